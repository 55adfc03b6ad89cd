"""Recording files: header, events, threads, the bind system, flushing and error reporting."""

from __future__ import annotations

import os
import platform
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import retracesoftware
from retracesoftware import stream


def bits(f: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", f))[0]


def canon(v: Any) -> Any:
    t = type(v)
    if t is float:
        return ("float", bits(v))
    if t in (tuple, list):
        return (t.__name__, tuple(canon(x) for x in v))
    if t is dict:
        return ("dict", tuple((canon(k), canon(x)) for k, x in v.items()))
    return (t.__name__, v)


def record(path: Path, events: list[Any], **kw: Any) -> None:
    with stream.Writer(path, **kw) as w:
        for ev in events:
            w.write(ev)


def read_all(source: Any, **kw: Any) -> tuple[list[Any], BaseException | None]:
    out: list[Any] = []
    try:
        with stream.Reader(source, **kw) as r:
            for v in r:
                out.append(v)
    except stream.StreamError as exc:
        return out, exc
    return out, None


event_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=12),
        st.binary(max_size=12),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.lists(inner, max_size=4).map(tuple)),
    max_leaves=6,
)


# ------------------------------------------------------------------ header


def test_header(tmp_path: Path) -> None:
    path = tmp_path / "h.retrace"
    with stream.Writer(path, metadata={"command": "demo", "n": [1, 2]}) as w:
        written = w.header
    with stream.Reader(path) as r:
        h = r.header
        assert r.version == stream.FORMAT_VERSION
    assert h == written
    assert h.version == stream.FORMAT_VERSION
    assert len(h.recording_id) == 32 and int(h.recording_id, 16) >= 0
    assert isinstance(h.created, float)
    assert h.argv == sys.argv
    assert h.cwd == os.getcwd()
    assert h.python_implementation == platform.python_implementation()
    assert h.python_version == platform.python_version()
    assert h.platform == platform.platform()
    assert h.retrace_version == retracesoftware.__version__
    assert h.extra == {"command": "demo", "n": [1, 2]}


def test_recording_ids_differ(tmp_path: Path) -> None:
    record(tmp_path / "a", [])
    record(tmp_path / "b", [])
    with stream.Reader(tmp_path / "a") as a, stream.Reader(tmp_path / "b") as b:
        assert a.header.recording_id != b.header.recording_id


def test_metadata_must_be_plain(tmp_path: Path) -> None:
    with pytest.raises(stream.StreamError, match="metadata"):
        stream.Writer(tmp_path / "m", metadata={"obj": object()})


# ------------------------------------------------------------------ events and threads


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.integers(0, 4), event_values), max_size=40), st.booleans())
def test_threads_round_trip(tmp_path: Path, events: list[tuple[int, Any]], small: bool) -> None:
    path = tmp_path / "t.retrace"
    with stream.Writer(path, frame_size=64 if small else 65536) as w:
        for tid, v in events:
            w.write(v, thread=tid)
        assert w.events_written == len(events)
    with stream.Reader(path) as r:
        got = [(e.thread, canon(e.value)) for e in r.events()]
        assert r.finished and r.events_read == len(events)
    assert got == [(t, canon(v)) for t, v in events]
    with stream.Reader(path.read_bytes()) as r:
        per_thread = r.threads()
    expected: dict[int, list[Any]] = {}
    for t, v in events:
        expected.setdefault(t, []).append(canon(v))
    assert {t: [canon(v) for v in vs] for t, vs in per_thread.items()} == expected
    for tid in expected:
        with stream.Reader(path) as r:
            assert [canon(v) for v in r.iter_thread(tid)] == expected[tid]
    # Demultiplexed: consumers take turns, each pulling its own thread's values.
    with stream.Reader(path) as r:
        got_by: dict[int, list[Any]] = {t: [] for t in expected}
        order = sorted(expected, reverse=True)
        while order:
            for tid in list(order):
                try:
                    got_by[tid].append(canon(r.next_for(tid)))
                except EOFError:
                    order.remove(tid)
    assert got_by == expected


def test_automatic_thread_ids(tmp_path: Path) -> None:
    path = tmp_path / "auto.retrace"
    with stream.Writer(path) as w:
        w.write("main")

        def worker(tag: str) -> None:
            w.write(tag)
            w.write(tag + "-again")

        for tag in ("first", "second"):
            th = threading.Thread(target=worker, args=(tag,))
            th.start()
            th.join()
        w.write("main-again")
    with stream.Reader(path) as r:
        assert list(r.events()) == [
            (0, "main"),
            (1, "first"),
            (1, "first-again"),
            (2, "second"),
            (2, "second-again"),
            (0, "main-again"),
        ]


def test_concurrent_writers_keep_every_event(tmp_path: Path) -> None:
    path = tmp_path / "conc.retrace"
    n_threads, n_events = 4, 2000
    with stream.Writer(path, frame_size=512) as w:

        def worker(i: int) -> None:
            for k in range(n_events):
                w.write((i, k), thread=i)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    with stream.Reader(path) as r:
        per = r.threads()
    assert per == {i: [(i, k) for k in range(n_events)] for i in range(n_threads)}


def test_position(tmp_path: Path) -> None:
    path = tmp_path / "pos.retrace"
    record(path, list(range(100, 400)), frame_size=64)
    data = path.read_bytes()
    with stream.Reader(path) as r:
        assert r.position is None
        seen = []
        for i, v in enumerate(r):
            pos = r.position
            assert pos is not None and pos.event == i
            seen.append(pos)
            # The offset points at the event's encoding: an INT_POS opcode then its varint.
            assert data[pos.offset] == 0x03
            assert v >= 100
    frames = [p.frame for p in seen]
    assert frames == sorted(frames) and frames[-1] > 5
    offsets = [p.offset for p in seen]
    assert offsets == sorted(set(offsets))


# ------------------------------------------------------------------ bind system


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.sampled_from(["bind", "write", "unbind"]), st.integers(0, 5)), max_size=40
    )
)
def test_bind_property(tmp_path: Path, ops: list[tuple[str, int]]) -> None:
    objs = [object() for _ in range(6)]
    bound: dict[int, int] = {}  # obj index -> handle
    writes: list[tuple[int, int]] = []  # (handle, obj index)
    path = tmp_path / "b.retrace"
    with stream.Writer(path) as w:
        for op, i in ops:
            if op == "bind" and i not in bound:
                bound[i] = w.bind(objs[i])
            elif op == "write" and i in bound:
                w.write([objs[i], objs[i]])
                writes.append((bound[i], i))
            elif op == "unbind" and i in bound:
                assert w.unbind(objs[i]) == bound.pop(i)
    handles: list[tuple[int, Any]] = []
    with stream.Reader(path) as r:
        for v in r:
            assert v[0] is v[1] and isinstance(v[0], stream.Handle)
            handles.append((v[0].handle, v[0]))
    assert [h for h, _ in handles] == [h for h, _ in writes]
    # Equal handles resolve to the very same stand-in object.
    by_handle: dict[int, Any] = {}
    for h, obj in handles:
        assert by_handle.setdefault(h, obj) is obj


def test_on_bind_and_dead_handles(tmp_path: Path) -> None:
    path = tmp_path / "ob.retrace"
    sock, conn = bytearray(b"sock"), {"kind": "conn"}
    with stream.Writer(path) as w:
        assert w.bind(sock) == 0
        w.write(sock)
        assert w.bind(conn, thread=3) == 1
        w.write([conn, sock])
        w.unbind(sock)
        w.write("after")
        with pytest.raises(stream.StreamError, match="already bound"):
            w.bind(conn)
        with pytest.raises(stream.StreamError, match="not bound"):
            w.unbind(sock)
        with pytest.raises(stream.StreamError, match="no identity"):
            w.bind(5)
        with pytest.raises(TypeError, match="unexpected keyword"):
            w.write(1, threads=2)
        with pytest.raises(TypeError):
            w.write()
    calls: list[tuple[int, int]] = []
    made: dict[int, Any] = {}

    def on_bind(handle: int, thread: int) -> Any:
        calls.append((handle, thread))
        made[handle] = obj = object()
        return obj

    with stream.Reader(path, on_bind=on_bind) as r:
        assert next(r) is made[0]
        second = next(r)
        assert second == [made[1], made[0]] and second[0] is made[1]
        assert r.bound(0) is made[0]
        assert next(r) == "after"
        with pytest.raises(KeyError):
            r.bound(0)  # the writer announced its death
        assert r.bound(1) is made[1]
    assert calls == [(0, 0), (1, 3)]


# ------------------------------------------------------------------ hooks in recordings


class Stamp:
    def __init__(self, t: float) -> None:
        self.t = t


def test_hooks_in_recordings(tmp_path: Path) -> None:
    reg = stream.TypeRegistry()
    reg.register(Stamp, lambda s: s.t, Stamp)
    path = tmp_path / "hooks.retrace"
    s = Stamp(1.5)
    with stream.Writer(path, types=reg) as w:
        w.write("before")
        w.write([s, s])
        w.write(Stamp(2.5))
    with stream.Reader(path, types=reg) as r:
        assert next(r) == "before"
        a, b = next(r)
        assert a is b and a.t == 1.5
        assert next(r).t == 2.5
    out, err = read_all(path, types=stream.TypeRegistry())
    assert out == ["before"]
    assert isinstance(err, stream.UnknownTypeError) and "test_recording.Stamp" in str(err)


def test_failed_write_leaves_the_recording_consistent(tmp_path: Path) -> None:
    path = tmp_path / "rb.retrace"
    with stream.Writer(path) as w:
        w.write("one")
        with pytest.raises(stream.UnsupportedTypeError, match="Stamp"):
            w.write(["fresh-string", 2.5, Stamp(1.0)], thread=9)
        w.write(["fresh-string", 2.5])  # reuses nothing from the failed event
        assert w.events_written == 2
    with stream.Reader(path) as r:
        assert list(r.events()) == [(0, "one"), (0, ["fresh-string", 2.5])]


def test_closed_writer(tmp_path: Path) -> None:
    w = stream.Writer(tmp_path / "c.retrace")
    w.close()
    w.close()
    assert w.closed
    with pytest.raises(stream.StreamError, match="closed"):
        w.write(1)
    with pytest.raises(stream.StreamError, match="closed"):
        w.flush()


def test_unwritable_path(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        stream.Writer(tmp_path / "missing-dir" / "x.retrace")


# ------------------------------------------------------------------ flushing


def test_explicit_flush_makes_events_readable(tmp_path: Path) -> None:
    path = tmp_path / "f.retrace"
    w = stream.Writer(path, flush_interval=3600)
    try:
        w.write("a")
        w.write("b")
        w.flush()
        out, err = read_all(path)
        assert out == ["a", "b"]
        assert isinstance(err, stream.TruncatedError)
        assert "interrupted" in str(err) and str(path) in str(err)
    finally:
        w.close()
    assert read_all(path) == (["a", "b"], None)


def test_background_flush_of_an_idle_writer(tmp_path: Path) -> None:
    path = tmp_path / "bg.retrace"
    with stream.Writer(path, flush_interval=0.02) as w:
        w.write("idle soon")
        # No flush(), no more writes: the native flusher must hand the event to the OS.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            out, err = read_all(path)
            if out:
                break
            time.sleep(0.01)
        assert out == ["idle soon"]
        assert isinstance(err, stream.TruncatedError)


def test_flusher_thread_stops_with_the_last_writer(tmp_path: Path) -> None:
    from retracesoftware.stream import _stream

    w = stream.Writer(tmp_path / "x.retrace")
    assert _stream._flusher_state()[0] >= 1
    w.close()
    deadline = time.monotonic() + 20
    while _stream._flusher_state() != (0, False) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _stream._flusher_state() == (0, False)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_cannot_write_to_the_parents_recording(tmp_path: Path) -> None:
    path = tmp_path / "fork.retrace"
    w = stream.Writer(path)
    w.write("parent-1")
    pid = os.fork()
    if pid == 0:  # child
        code = 3
        try:
            w.write("child")
        except stream.StreamError:
            code = 0
        del w
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    w.write("parent-2")
    w.close()
    assert read_all(path) == (["parent-1", "parent-2"], None)


# ------------------------------------------------------------------ damaged files


def small_recording(tmp_path: Path) -> Path:
    path = tmp_path / "small.retrace"
    with stream.Writer(path) as w:
        for ev in ["alpha", 1.5, (1, "alpha"), b"xyz", list(range(20))]:
            w.write(ev)
            w.flush()  # one frame per event
    return path


def test_not_a_recording(tmp_path: Path) -> None:
    for name, data in [
        ("empty", b""),
        ("text", b"hello world, not a recording"),
        ("pyc", b"\x00" * 64),
    ]:
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(stream.NotARecordingError) as info:
            stream.Reader(p)
        assert str(p) in str(info.value)
    with pytest.raises(stream.NotARecordingError):
        stream.Reader(tmp_path)  # a directory
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(stream.NotARecordingError):
            stream.Reader(tmp_path / "fifo")  # refused, without waiting for a writer
    with pytest.raises(FileNotFoundError):
        stream.Reader(tmp_path / "nope")


def test_unsupported_version_names_both(tmp_path: Path) -> None:
    data = bytearray(small_recording(tmp_path).read_bytes())
    data[8] = 7  # major version 7
    with pytest.raises(stream.UnsupportedVersionError) as info:
        stream.Reader(bytes(data), name="v7.retrace")
    msg = str(info.value)
    assert "7.0" in msg and f"{stream.FORMAT_VERSION[0]}.x" in msg and "v7.retrace" in msg


def test_every_truncation_yields_a_prefix_then_truncated(tmp_path: Path) -> None:
    path = small_recording(tmp_path)
    data = path.read_bytes()
    full, err = read_all(data)
    assert err is None and len(full) == 5
    for cut in range(1, len(data)):
        out, err = read_all(data[:cut], name="cut.retrace")
        assert out == full[: len(out)]
        assert isinstance(err, stream.TruncatedError), (cut, err)
        assert "cut.retrace" in str(err) and "interrupted" in str(err)
        assert err.offset is not None and err.offset <= cut


def test_checksum_damage_is_corrupt(tmp_path: Path) -> None:
    path = small_recording(tmp_path)
    data = bytearray(path.read_bytes())
    data[-40] ^= 0x40  # inside the last data frame
    out, err = read_all(bytes(data), name="bad.retrace")
    assert isinstance(err, stream.CorruptError)
    assert "bad.retrace" in str(err) and "checksum" in str(err) and "expected" in str(err)
    assert err.offset is not None and out


def test_failed_reader_stays_failed(tmp_path: Path) -> None:
    data = small_recording(tmp_path).read_bytes()
    r = stream.Reader(data[:-30])
    with pytest.raises(stream.TruncatedError) as first:
        list(r)
    with pytest.raises(stream.TruncatedError) as again:
        next(r)
    assert again.value is first.value
    assert r.events_read == 5 and r.position is not None and r.position.event == 4


def test_trailer_checks(tmp_path: Path) -> None:
    data = small_recording(tmp_path).read_bytes()
    out, err = read_all(data + b"junk")
    assert isinstance(err, stream.CorruptError) and "after the trailer" in str(err)
    assert len(out) == 5


def test_crc32c_matches_the_specification() -> None:
    from retracesoftware.stream import _stream

    assert _stream.crc32c(b"123456789") == 0xE3069283
    assert _stream._crc32c_software(b"123456789") == 0xE3069283
    assert _stream.crc32c(b"") == 0
    data = bytes(range(256)) * 9 + b"tail"
    for n in (0, 1, 7, 8, 9, 63, 64, 65, len(data)):
        assert _stream.crc32c(data[:n]) == _stream._crc32c_software(data[:n])
        # Incremental form: crc(a || b) == crc32c(b, crc32c(a)).
        assert _stream.crc32c(data[n:], _stream.crc32c(data[:n])) == _stream.crc32c(data)
