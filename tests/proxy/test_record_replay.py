"""Record a program that talks to the world, change the world, replay it identically."""

from __future__ import annotations

import _random
import os
import random
import time

import pytest

from retracesoftware.proxy import EventKind, MemoryReader, MemoryWriter, ReplayDivergence, System


def program(world) -> list:
    out: list = [time.time(), time.monotonic(), time.perf_counter_ns()]
    out.append(random.random())
    out.append(random.randint(1, 10**6))
    rng = random.Random(1234)
    out.append([rng.random() for _ in range(3)])
    out.append(os.getenv("RETRACE_TEST_VAR"))
    out.append(world.fetch("http://example.org/a"))
    out.append(world.fetch_many(["x", "yy"]))
    return out


def test_replay_returns_recorded_values_without_calling_the_world(system, world, monkeypatch):
    monkeypatch.setenv("RETRACE_TEST_VAR", "recorded")
    writer = MemoryWriter()
    recorded = system.record(writer, program, world)
    assert world.calls == 2
    assert recorded[6] == "recorded"

    # Change the world: environment, remote answers, random state, clocks move on.
    monkeypatch.setenv("RETRACE_TEST_VAR", "changed")
    world.answer = "second world"
    random.seed(99)
    time.sleep(0.001)

    replayed = system.replay(writer.reader(), program, world)
    assert replayed == recorded
    assert world.calls == 2, "replay must not call the real functions"


def test_replay_never_calls_the_real_clock(monkeypatch):
    calls: list[str] = []
    real_time = time.time

    def spy() -> float:
        calls.append("time")
        return real_time()

    monkeypatch.setattr(time, "time", spy)
    with System() as s:
        s.patch_function(time, "time")
        writer = MemoryWriter()
        recorded = s.record(writer, lambda: [time.time() for _ in range(3)])
        assert len(calls) == 3
        assert s.replay(writer.reader(), lambda: [time.time() for _ in range(3)]) == recorded
        assert len(calls) == 3
    assert time.time is spy


def test_events_are_typed_and_tagged(system, world):
    writer = MemoryWriter()
    system.record(writer, lambda: (time.time(), world.fetch("u")))
    kinds = [EventKind(e[0]) for e in writer.events]
    assert kinds == [
        EventKind.CALL,
        EventKind.RESULT,
        EventKind.CALL,
        EventKind.RESULT,
        EventKind.END,
    ]
    assert {e[1] for e in writer.events} == {0}
    call = writer.events[2]
    assert call[2] == "fakeworld.fetch" and call[3] == "s" and isinstance(call[4], int)


def test_patched_c_type_instance_is_bound_and_never_reinitialised(system):
    def prog() -> tuple:
        rng = _random.Random()
        rng.seed(7)
        return rng.random(), rng.getrandbits(40)

    writer = MemoryWriter()
    first = system.record(writer, prog)
    keys = [e[2] for e in writer.events if e[0] == EventKind.CALL]
    assert keys[0] == "_random.Random.__init__"
    assert "_random.Random.random" in keys
    assert system.replay(writer.reader(), prog) == first


def test_record_and_replay_return_values_and_leave_system_idle(system):
    writer = MemoryWriter()
    assert system.record(writer, lambda x: x * 2, 21) == 42
    assert system.mode.name == "OFF"
    assert system.replay(writer.reader(), lambda x: x * 2, 21) == 42


def test_outside_the_sandbox_patched_functions_are_transparent(system, world):
    before = world.calls
    assert world.fetch("x") == "first world: x"
    assert world.calls == before + 1
    assert isinstance(time.time(), float)


def test_internal_exception_propagates_from_record_and_replay(system):
    def boom() -> None:
        time.time()
        raise KeyError("internal")

    writer = MemoryWriter()
    with pytest.raises(KeyError):
        system.record(writer, boom)
    with pytest.raises(KeyError):
        system.replay(writer.reader(), boom)


def test_memory_reader_rejects_malformed_events():
    with pytest.raises(ValueError, match="event 1 is malformed"):
        MemoryReader([(1, 0, "k", "", 0), ("bad",)])
    with pytest.raises(ValueError, match="malformed"):
        MemoryReader([(42, 0)])


def test_replay_with_a_fresh_system(world):
    """Record and replay normally run in different processes: nothing may depend on the
    System instance (keys, handles, callback numbers are all derived from the program)."""
    import _random

    def prog():
        rng = _random.Random(5)
        conn = world.connect("h")
        return [rng.random(), conn.send(b"abc"), world.apply(lambda x: -x, [1, 2]), time.time()]

    def make() -> System:
        s = System()
        s.patch_function(time, "time")
        s.patch_type(_random.Random)
        for name in ("connect", "apply"):
            s.patch_function(world, name)
        return s

    first = make()
    writer = MemoryWriter()
    recorded = first.record(writer, prog)
    first.uninstall()
    events = list(writer.events)
    second = make()
    try:
        assert second.replay(MemoryReader(events), prog) == recorded
    finally:
        second.uninstall()


def test_repeated_runs_do_not_leak(system, world):
    import gc
    import tracemalloc

    def prog():
        conn = world.connect("h")
        return [time.time(), conn.recv(), world.apply(str, [1]), world.fetch_many(["a"])]

    def cycle():
        writer = MemoryWriter()
        system.record(writer, prog)
        system.replay(writer.reader(), prog)

    for _ in range(20):
        cycle()
    gc.collect()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(200):
            cycle()
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert end - start < 64 * 1024, f"grew by {end - start} bytes over 200 record/replay runs"


def _connection_program(world) -> list:
    conn = world.connect("db")
    out: list = [conn.send(b"a"), conn.send(b"bc"), conn.recv(), conn.host, conn.host]
    send = conn.send
    out.append([send(b"x") for _ in range(3)])
    out.append(list(map(conn.send, [b"1", b"22"])))  # a method object used as a value
    out.append(len(conn))
    out.append(repr(conn.recv).startswith("<method recv of external"))
    out.append((conn.send == conn.send, conn.send == conn.recv, len({conn.send, conn.send})))
    return out


def test_method_calls_on_proxies_are_one_crossing_each(system, world):
    writer = MemoryWriter()
    recorded = system.record(writer, _connection_program, world)
    assert recorded[:5] == [1, 2, b"reply from db", "db", "db"]
    assert recorded[-1] == (True, False, 1)  # equal as bound methods are, without crossing
    keys = [e[2] for e in writer.events if e[0] == EventKind.CALL]
    # each name is looked up once per thread and run; a method call is then one crossing
    assert keys.count("proxy.__ismethod__") == 3  # send, recv, host
    assert keys.count("proxy.__callmethod__") == 2 + 1 + 3 + 2
    assert keys.count("proxy.__getattr__") == 2  # host is an attribute: read each time
    world.answer = "another world"
    assert system.replay(writer.reader(), _connection_program, world) == recorded


def test_changed_method_call_diverges(system, world):
    writer = MemoryWriter()
    system.record(writer, lambda: world.connect("db").send(b"a"))
    with pytest.raises(ReplayDivergence, match=r"values|arguments"):
        system.replay(writer.reader(), lambda: world.connect("db").send(b"zz"))


def test_dropped_proxies_release_their_bindings(system, world):
    kept = world.connect("kept")  # external code holds on to this one

    def again():
        world.calls += 1
        return kept

    world.again = again
    system.patch_function(world, "again")
    sizes: list[int] = []

    def program() -> list:
        out = []
        for i in range(200):
            conn = world.connect(f"host{i}")
            out.append(conn.send(b"x" * (i % 7)))
            del conn
            sizes.append(len(system._bound))
        first = world.again()
        out.append(first.recv())
        del first
        out.append(world.again().recv())  # the same real object, its first proxy gone
        return out

    writer = MemoryWriter()
    recorded = system.record(writer, program)
    assert max(sizes) <= 4, "bindings of dropped proxies must not pile up"
    sizes.clear()
    assert system.replay(writer.reader(), program) == recorded
    assert max(sizes) <= 4


def test_proxy_collected_earlier_on_replay_gets_a_fresh_stand_in(system, world):
    import gc

    from retracesoftware.proxy import Mode

    kept = world.connect("kept")

    def again():
        world.calls += 1
        return kept

    world.again = again
    system.patch_function(world, "again")

    def program() -> bytes:
        first = world.again()
        cycle: list = [first]
        cycle.append(cycle)
        del first, cycle  # garbage in a cycle: alive until the collector runs
        if system.mode is Mode.REPLAY:
            gc.collect()  # ... which, here, it does earlier on replay
        return world.again().recv()

    gc.disable()
    try:
        writer = MemoryWriter()
        recorded = system.record(writer, program)
        assert system.replay(writer.reader(), program) == recorded == b"reply from kept"
    finally:
        gc.enable()


class _Token:
    """An external object whose ``__enter__``/``__iter__`` return other objects."""

    def __enter__(self) -> str:
        return "token"

    def __exit__(self, *exc: object) -> bool:
        return False

    def __iter__(self):
        return iter([1, 2])


class _Counter:
    """An external object whose ``__enter__``/``__iter__`` return itself (like files)."""

    def __init__(self) -> None:
        self.n = 0

    def __enter__(self) -> _Counter:
        return self

    def __exit__(self, *exc: object) -> bool:
        return False

    def __iter__(self) -> _Counter:
        return self

    def __next__(self) -> int:
        self.n += 1
        if self.n > 3:
            raise StopIteration
        return self.n


def test_enter_and_iter_returning_self_or_another_object(system, world):
    world.token = lambda: _Token()
    world.counter = lambda: _Counter()
    system.patch_function(world, "token")
    system.patch_function(world, "counter")

    def program() -> list:
        out: list = []
        with world.token() as token:
            out.append(token)
        out.append(list(world.token()))
        counter = world.counter()
        with counter as same:
            out.append(same is counter)
            out.append(list(same))
        out.append(iter(counter) is counter)
        return out

    writer = MemoryWriter()
    recorded = system.record(writer, program)
    assert recorded == ["token", [1, 2], True, [1, 2, 3], True]
    results = [e for e in writer.events if e[0] == EventKind.RESULT]
    assert 1 in [e[2] for e in results]  # "returned itself": a plain 1 on the fast path
    assert system.replay(writer.reader(), program) == recorded
