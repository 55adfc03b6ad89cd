"""Threads: separate gates, tagged events, deterministic replay order."""

from __future__ import annotations

import threading
import time

import pytest

from retracesoftware.proxy import EngineError, MemoryWriter
from retracesoftware.utils import GateState


def test_threads_record_tagged_events_and_replay(system, world):
    def worker(n: int, out: list) -> None:
        for i in range(3):
            out.append((n, world.fetch(f"{n}-{i}"), time.time()))

    def prog():
        outs: list[list] = [[], []]
        threads = [
            threading.Thread(target=system.thread(worker), args=(n, outs[n])) for n in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return outs

    writer = MemoryWriter()
    recorded = system.record(writer, prog)
    tags = {e[1] for e in writer.events}
    assert tags == {0, 1, 2}
    calls = world.calls
    world.answer = "changed"
    assert system.replay(writer.reader(), prog) == recorded
    assert world.calls == calls


def test_each_thread_has_its_own_gate_state(system):
    states: dict[str, int] = {}

    def other_thread():
        states["other"] = system.gate.get()

    def prog():
        states["main"] = system.gate.get()
        t = threading.Thread(target=other_thread)  # not wrapped: outside the sandbox
        t.start()
        t.join()

    system.record(MemoryWriter(), prog)
    assert states == {"main": GateState.INSIDE, "other": GateState.OFF}
    assert system.gate.get() == GateState.OFF


def test_unsandboxed_thread_calls_are_not_recorded(system, world):
    def prog():
        t = threading.Thread(target=lambda: world.fetch("outside"))
        t.start()
        t.join()
        return world.fetch("inside")

    writer = MemoryWriter()
    system.record(writer, prog)
    keys = [e[2] for e in writer.events if e[0] == 1]
    assert keys == ["fakeworld.fetch"]


def test_thread_wrapper_requires_sandbox(system):
    with pytest.raises(EngineError, match="sandboxed code"):
        system.thread(lambda: None)


def test_threads_binding_objects_lending_callbacks_and_nesting(system, world):
    """Handles, callback numbers and thread tags are per-thread: interleaving cannot mix them."""

    def worker(n: int, out: list) -> None:
        conn = world.connect(f"host{n}")
        for i in range(3):
            out.append(conn.send(b"x" * (n + i)))
            out.append(world.apply(lambda v, n=n: v + n, [i, i + 1]))
            time.sleep(0)  # let the other worker interleave
        if n == 0:
            inner: list = []
            t = threading.Thread(target=system.thread(worker), args=(5, inner))
            t.start()
            t.join()
            out.append(inner)
        out.append(conn.recv())

    def prog():
        outs: list[list] = [[], [], []]
        threads = [
            threading.Thread(target=system.thread(worker), args=(n, outs[n])) for n in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return outs

    writer = MemoryWriter()
    recorded = system.record(writer, prog)
    calls = world.calls
    for _ in range(2):
        assert system.replay(writer.reader(), prog) == recorded
    assert world.calls == calls
    assert {e[1] for e in writer.events} == {0, 1, 2, 3, 4}
