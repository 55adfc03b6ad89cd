"""Backends that are not memory-backed see exactly the same events through the protocol."""

from __future__ import annotations

import _random
import os
import time
from typing import Any

from retracesoftware.proxy import (
    ErrorValue,
    Event,
    EventKind,
    MemoryWriter,
    Reader,
    System,
    Writer,
)


class ListWriter:
    """A Writer without a fast log: every event goes through its methods."""

    fast_log = None

    def __init__(self) -> None:
        self.events: list[Event] = []

    def call(self, thread: int, key: str, shape: str, digest: int) -> None:
        self.events.append((1, thread, key, shape, digest))

    def result(self, thread: int, value: Any) -> None:
        self.events.append((2, thread, value))

    def error(self, thread: int, error: ErrorValue) -> None:
        self.events.append((3, thread, error))

    def callback(self, thread: int, ref: int, args: tuple, kwargs: dict) -> None:
        self.events.append((4, thread, ref, args, kwargs))

    def callback_return(self, thread: int) -> None:
        self.events.append((5, thread))

    def callback_error(self, thread: int, error: ErrorValue) -> None:
        self.events.append((6, thread, error))

    def end(self, thread: int) -> None:
        self.events.append((7, thread))

    def thread(self, thread: int, child: int) -> None:
        self.events.append((8, thread, child))


class ListReader:
    """A single-threaded Reader without a fast log."""

    fast_log = None

    def __init__(self, events: list[Event]) -> None:
        self._events = events
        self._pos = 0

    @property
    def position(self) -> int:
        return self._pos

    def next(self, thread: int, timeout: float) -> Event | None:
        if self._pos >= len(self._events):
            return None
        event = self._events[self._pos]
        assert event[1] == thread
        self._pos += 1
        return event


def program(world) -> list:
    rng = _random.Random(3)
    out: list = [time.time(), os.getenv("HOME"), rng.random(), world.fetch("a")]
    out.append(world.apply(lambda x: x * 2, [1, 2]))
    try:
        world.fail("nope")
    except OSError as exc:
        out.append(exc.args)
    out.append(world.fetch_many(["k"]))
    out.append(world.identity([1, (2.5, "x"), {"k": [b"y"]}, {3}]))
    out.append(world.identity(({"a": 1j},)))
    return out


def test_protocol_classes_are_satisfied():
    assert isinstance(ListWriter(), Writer)
    assert isinstance(MemoryWriter(), Writer)
    assert isinstance(ListReader([]), Reader)
    assert isinstance(MemoryWriter().reader(), Reader)


def test_slow_backend_records_the_same_events_as_the_fast_one(system, world):
    memory = MemoryWriter()
    fast = system.record(memory, program, world)
    plain = ListWriter()
    slow = system.record(plain, program, world)
    assert fast[1:] == slow[1:]  # time moved on
    kinds = [EventKind(e[0]) for e in plain.events]
    assert kinds == [EventKind(e[0]) for e in memory.events]
    for a, b in zip(plain.events, memory.events, strict=True):
        if a[0] == EventKind.CALL:
            assert a[2:] == b[2:]  # key, shape and digest

    world.answer = "changed"
    assert system.replay(ListReader(plain.events), program, world) == slow
    assert system.replay(memory.reader(), program, world) == fast


def test_external_construction_of_patched_type_uses_stub_factory(world):
    made: list = []

    def make_rng(seed: int) -> _random.Random:
        return _random.Random(seed)

    world.make_rng = make_rng

    with System() as s:
        s.patch_type(_random.Random, stub=lambda cls: made.append(cls) or cls.__new__(cls))
        s.patch_function(world, "make_rng")

        def prog():
            rng = world.make_rng(11)
            return type(rng).__name__, rng.random(), rng.random()

        writer = MemoryWriter()
        recorded = s.record(writer, prog)
        assert made == []
        assert s.replay(writer.reader(), prog) == recorded
        assert made == [_random.Random]


def test_plain_results_are_copied_for_program_and_recording(system, world):
    shared = [1, [2]]
    world.cached = lambda: shared
    system.patch_function(world, "cached")

    def prog():
        a = world.cached()
        a[1].append("mutated by the program")
        b = world.cached()
        return a is b, a, b

    writer = MemoryWriter()
    recorded = system.record(writer, prog)
    assert recorded == (False, [1, [2, "mutated by the program"]], [1, [2]])
    assert shared == [1, [2]]
    for _ in range(2):
        assert system.replay(writer.reader(), prog) == recorded
