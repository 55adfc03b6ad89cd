"""Every divergence kind is reported precisely, at the first wrong call."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import pytest

from retracesoftware.proxy import MemoryWriter, ReplayDivergence


def record(system, prog) -> MemoryWriter:
    writer = MemoryWriter()
    system.record(writer, prog)
    return writer


def replay_divergence(system, writer, prog) -> ReplayDivergence:
    with pytest.raises(ReplayDivergence) as info:
        system.replay(writer.reader(), prog)
    return info.value


def test_different_function(system, world):
    writer = record(system, lambda: (time.time(), world.fetch("a")))
    line = None

    def other():
        nonlocal line
        time.time()
        line = _lineno() + 1
        time.monotonic()

    err = replay_divergence(system, writer, other)
    assert err.kind == "function"
    assert err.index == 2 and err.thread == 0
    assert "fakeworld.fetch(s)" in err.expected
    assert "time.monotonic()" in err.actual
    assert err.location is not None
    assert err.location[0] == __file__ and err.location[1] == line
    assert err.location[2] == "other"
    msg = str(err)
    assert "event 2" in msg and "thread 0" in msg and f"{__file__}:{line}" in msg


def test_different_argument_shape(system, world):
    writer = record(system, lambda: world.fetch("a"))
    err = replay_divergence(system, writer, lambda: world.fetch(1))
    assert err.kind == "arguments"
    assert "fakeworld.fetch(s)" in err.expected and "fakeworld.fetch(i)" in err.actual
    assert err.index == 0


def test_keyword_arguments_are_part_of_the_shape(system, world):
    writer = record(system, lambda: world.fetch(url="a"))
    err = replay_divergence(system, writer, lambda: world.fetch("a"))
    assert err.kind == "arguments"
    assert "fetch(,url=s)" in err.expected


def test_different_argument_value_never_gets_the_other_calls_result(system, world, monkeypatch):
    monkeypatch.setenv("A_VAR", "a-value")
    writer = record(system, lambda: os.getenv("A_VAR"))
    err = replay_divergence(system, writer, lambda: os.getenv("B_VAR"))
    assert err.kind == "values"
    assert "os.getenv(s)" in err.expected and "digest" in err.actual


def test_extra_call(system, world):
    writer = record(system, lambda: time.time())
    err = replay_divergence(system, writer, lambda: (time.time(), time.time()))
    assert err.kind == "extra call"
    assert err.index == 2
    assert "the end of thread 0" in err.expected or "end of the recording" in err.expected
    assert "time.time()" in err.actual


def test_missing_call(system, world):
    writer = record(system, lambda: (time.time(), world.fetch("x")))
    err = replay_divergence(system, writer, lambda: time.time())
    assert err.kind == "missing call"
    assert "fakeworld.fetch(s)" in err.expected
    assert "finished" in err.actual
    assert err.index == 2


def test_missing_call_inside_callback(system, world):
    def cb(x):
        return world.fetch(str(x))

    writer = record(system, lambda: world.apply(cb, [1]))
    err = replay_divergence(system, writer, lambda: world.apply(lambda x: x, [1]))
    assert err.kind == "missing call"
    assert "fakeworld.fetch" in err.expected


def test_extra_call_after_fast_path_events(system):
    """The native fast path answers matching calls; the first mismatch still raises."""
    writer = record(system, lambda: [time.time() for _ in range(5)])
    err = replay_divergence(system, writer, lambda: [time.time() for _ in range(6)])
    assert err.kind == "extra call" and err.index == 10


def test_divergence_swallowed_by_program_is_still_raised(system, world):
    writer = record(system, lambda: world.fetch("a"))

    def swallowing():
        with contextlib.suppress(Exception):
            time.time()
        return "finished anyway"

    err = replay_divergence(system, writer, swallowing)
    assert err.kind == "function"


def test_after_divergence_every_crossing_fails(system, world):
    writer = record(system, lambda: (time.time(), time.time()))
    results = []

    def prog():
        for _ in range(3):
            try:
                results.append(world.fetch("x"))
            except ReplayDivergence as exc:
                results.append(exc)

    err = replay_divergence(system, writer, prog)
    assert all(r is err for r in results)


def test_thread_waiting_forever_is_a_divergence(system, world):
    system.timeout = 0.2

    def prog():
        t = threading.Thread(target=system.thread(lambda: time.time()))
        t.start()
        t.join()
        time.time()

    writer = record(system, prog)
    errors: list = []

    def other():
        go = threading.Event()

        def worker():
            go.wait(5)
            try:
                time.time()
            except ReplayDivergence as exc:
                errors.append(exc)

        t = threading.Thread(target=system.thread(worker))
        t.start()
        try:
            time.time()  # the recording has the worker's call first: wait, then give up
        finally:
            go.set()
            t.join()

    err = replay_divergence(system, writer, other)
    assert err.kind == "thread" and err.thread == 0
    assert errors == [err]


def test_thread_start_is_part_of_the_recording(system, world):
    def prog():
        t = threading.Thread(target=system.thread(lambda: None))
        t.start()
        t.join()

    writer = record(system, prog)
    assert (8, 0, 1) in writer.events
    err = replay_divergence(system, writer, lambda: time.time())
    assert err.kind == "function" and "the start of thread 1" in err.expected
    writer = record(system, lambda: None)
    err = replay_divergence(system, writer, prog)
    assert err.kind == "extra call" and "started a thread" in err.actual


def _lineno() -> int:
    import sys

    return sys._getframe(1).f_lineno
