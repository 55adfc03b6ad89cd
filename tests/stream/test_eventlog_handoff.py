"""The native handoff between ``utils.EventLog`` and a recording (``write_log`` / ``fill_log``)."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

from retracesoftware import stream
from retracesoftware.utils import EventLog

EVENTS = [
    (1, 0, "time.time", "", 2166136261),
    (2, 0, 1.5),
    (1, 3, "os.getcwd", "", 7),
    (2, 3, "/tmp"),
    (7, 3),
    (2, 0, (1, [2, "x"], {"k": None})),
    (7, 0),
]


def _write(path: Path, events: list[tuple]) -> int:
    log = EventLog(events)
    with stream.Writer(path) as w:
        n = w.write_log(log)
        assert len(log) == 0 and log.pos == 0  # drained and emptied
        w.write(("retrace.other", 1), 0)
    return n


def test_write_log_writes_each_event_as_its_tuple_on_its_thread(tmp_path: Path) -> None:
    path = tmp_path / "a.retrace"
    assert _write(path, EVENTS) == len(EVENTS)
    with stream.Reader(path) as r:
        got = list(r.events())
    assert [(e.thread, e.value) for e in got[:-1]] == [(ev[1], ev) for ev in EVENTS]
    assert got[-1] == (0, ("retrace.other", 1))


def test_write_log_encodes_exactly_like_write(tmp_path: Path) -> None:
    a, b = tmp_path / "a.retrace", tmp_path / "b.retrace"
    _write(a, EVENTS)
    with stream.Writer(b) as w:
        for ev in EVENTS:
            w.write(ev, ev[1])
        w.write(("retrace.other", 1), 0)
    # Same bytes after the header (which holds a random id and a time stamp).
    with stream.Reader(a) as ra, stream.Reader(b) as rb:
        assert list(ra.events()) == list(rb.events())
    assert a.stat().st_size == b.stat().st_size


def test_write_log_keeps_events_after_a_failure(tmp_path: Path) -> None:
    log = EventLog([(2, 0, 1), (2, 0, object()), (2, 0, 3)])
    with stream.Writer(tmp_path / "c.retrace") as w:
        with pytest.raises(stream.UnsupportedTypeError):
            w.write_log(log)
        assert len(log) == 2  # the failed event and the one after it stay
        assert w.events_written == 1


def test_write_log_rejects_other_objects(tmp_path: Path) -> None:
    with stream.Writer(tmp_path / "d.retrace") as w, pytest.raises(TypeError):
        w.write_log([(2, 0, 1)])  # type: ignore[arg-type]


def test_fill_log_returns_other_events_and_stops_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "e.retrace"
    with stream.Writer(path) as w:
        w.write((1, 0, "k", "", 5), 0)
        w.write(("retrace.exit", {"status": 0}), 0)
        w.write((9, 0), 0)  # a kind outside the range
        w.write((2, 1, 4), 0)  # a thread tag that is not the event's thread
        w.write((2, 0, 1, 2, 3, 4), 0)  # too many fields
        w.write((2, 0, "ok"), 0)
    log = EventLog()
    others = []
    with stream.Reader(path) as r:
        while (other := r.fill_log(log, 1, 8)) is not None:
            others.append(other)
    assert log.events == ((1, 0, "k", "", 5), (2, 0, "ok"))
    assert others == [
        (0, ("retrace.exit", {"status": 0})),
        (0, (9, 0)),
        (0, (2, 1, 4)),
        (0, (2, 0, 1, 2, 3, 4)),
    ]
    assert log.thread_ends() == {0: 1}


def test_fill_log_reports_truncation_after_the_complete_events(tmp_path: Path) -> None:
    path = tmp_path / "f.retrace"
    w = stream.Writer(path, frame_size=64)
    for i in range(50):
        w.write((2, 0, i), 0)
    w.flush()
    data = path.read_bytes()  # never closed: no trailer
    w.close()
    cut = tmp_path / "g.retrace"
    cut.write_bytes(data)
    log = EventLog()
    with stream.Reader(cut) as r, pytest.raises(stream.TruncatedError):
        r.fill_log(log, 1, 8)
    assert [e[2] for e in log.events] == list(range(len(log)))
    assert len(log) > 0


def test_handoff_does_not_leak(tmp_path: Path) -> None:
    path = tmp_path / "h.retrace"
    value = "a value that is not interned"

    def run() -> None:
        log = EventLog([(2, 0, value), (2, 1, (value, 1.5))])
        with stream.Writer(path) as w:
            w.write_log(log)
        out = EventLog()
        with stream.Reader(path) as r:
            assert r.fill_log(out, 1, 8) is None
        assert len(out) == 2

    for _ in range(10):
        run()
    gc.collect()
    before = sys.getrefcount(value)
    for _ in range(200):
        run()
    gc.collect()
    assert sys.getrefcount(value) == before
