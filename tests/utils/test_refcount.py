"""Reference counting of the native extension: no leaks, no stolen references."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections.abc import Callable

import pytest

from retracesoftware.utils import (
    TPFLAGS_IMMUTABLETYPE,
    Boundary,
    Crossing,
    EventLog,
    Gate,
    GateState,
    InterceptDict,
    StackFactory,
    WithoutFlags,
    fingerprint,
    fingerprint_full,
    patch_hash,
    unpatch_hash,
)

ROUNDS = 2000


def assert_no_leak(fn: Callable[[], object], *watched: object) -> None:
    """Run fn many times: refcounts of *watched* and traced memory must not grow."""
    for _ in range(20):
        fn()
    gc.collect()
    before = [sys.getrefcount(o) for o in watched]
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(ROUNDS):
            fn()
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    after = [sys.getrefcount(o) for o in watched]
    assert after == before
    assert end - start < 32 * 1024, f"memory grew by {end - start} bytes"


class Target:
    """A callable whose results and arguments we can watch."""

    def __init__(self) -> None:
        self.result = "a result string"
        self.message = "boom"

    def __call__(self, *args: object, **kwargs: object) -> object:
        return self.result

    def fail(self, *args: object) -> object:
        raise ValueError(self.message)  # a fresh exception: re-raising one grows its traceback


def handlers():
    calls: list = []

    def slow(crossing, args, kwargs):
        return "slow"

    def record_result(crossing, value):
        return value

    def record_error(crossing, exc):
        calls.append(None)
        calls.clear()

    return slow, record_result, record_error


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_crossing_paths_do_not_leak(mode: int) -> None:
    gate = Gate()
    boundary = Boundary(gate, *handlers())
    target = Target()
    key = "bench.key"
    crossing = Crossing(target, key, boundary)
    failing = Crossing(target.fail, "bench.fail", boundary)
    nested = Target()
    nested.result = ({"k": [1, 2.5, "s"]}, [b"x", (1, 2)], {3, 4})
    plain = Crossing(nested, "bench.plain", boundary)
    arg_s, arg_b, arg_i = "argument", b"bytes", 123456789
    plain_arg = [arg_s, (arg_i, [arg_b]), {"key": arg_s}]
    bound = object()
    boundary.bind(bound, 7)
    boundary.mode = mode

    def run() -> None:
        log = EventLog()
        boundary.log = log
        with gate.scope(GateState.INSIDE, 0):
            crossing(arg_s, arg_b, arg_i)
            crossing(bound, arg_s)
            crossing([arg_s])  # plain container argument
            crossing([object()])  # slow path
            crossing(arg_s, kw=arg_i)  # slow path
            plain(plain_arg)  # plain container argument and result
            if mode == 1:
                with pytest.raises(ValueError):
                    failing(arg_s)
        if mode == 2:
            replay = EventLog(
                [(1, 0, key, "syi", fingerprint((arg_s, arg_b, arg_i))[1]), (2, 0, arg_s)]
            )
            boundary.log = replay
            with gate.scope(GateState.INSIDE, 0):
                crossing(arg_s, arg_b, arg_i)
            shape, digest = fingerprint_full((plain_arg,))
            boundary.log = EventLog([(1, 0, "bench.plain", shape, digest), (2, 0, nested.result)])
            with gate.scope(GateState.INSIDE, 0):
                assert plain(plain_arg) == nested.result
        crossing(arg_s)  # gate off: passthrough
        boundary.log = None

    assert_no_leak(
        run,
        nested,
        nested.result,
        plain_arg,
        target,
        target.result,
        target.message,
        key,
        arg_s,
        arg_b,
        arg_i,
        bound,
    )


def test_method_binding_does_not_leak() -> None:
    gate = Gate()
    boundary = Boundary(gate, *handlers())

    class Holder:
        pass

    Holder.method = Crossing(Target(), "holder.method", boundary)
    obj = Holder()
    assert_no_leak(lambda: obj.method(1), obj, Holder.method)


def test_event_log_does_not_leak() -> None:
    value = "some value"

    def run() -> None:
        log = EventLog()
        for _ in range(10):
            log.append((2, 0, value))
        log.events  # noqa: B018
        log.take()
        log.peek()
        log[3]
        EventLog(log.events)

    assert_no_leak(run, value)


def test_gate_flags_stack_and_dict_do_not_leak() -> None:
    gate = Gate()
    factory = StackFactory(skip=("/nonexistent",))
    hook_calls: list = []
    # Fresh objects: shared singletons such as one-character strings are
    # referenced (and released) by unrelated code while the loop runs.
    key, value = object(), object()

    def on_set(k: object, v: object) -> None:
        hook_calls.append(1)
        hook_calls.clear()

    def run() -> None:
        with gate.scope(GateState.INSIDE, 3):
            gate.set(GateState.OUTSIDE)
        with WithoutFlags(int, TPFLAGS_IMMUTABLETYPE):
            pass
        factory()
        d = InterceptDict()
        d.on_set = on_set
        d.on_delete = print
        d[key] = value
        d.on_delete = None
        del d[key]
        Gate()

    assert_no_leak(run, gate, factory, on_set, key, value, int)


def test_hash_patch_does_not_leak() -> None:
    class Node:
        pass

    def run() -> None:
        patch_hash(Node)
        nodes = [Node() for _ in range(5)]
        {hash(n) for n in nodes}
        unpatch_hash(Node)

    assert_no_leak(run, Node)


def test_boundary_and_crossing_are_collected_in_cycles() -> None:
    import weakref

    gate = Gate()
    boundary = Boundary(gate, *handlers())
    target = Target()
    crossing = Crossing(target, "cycle", boundary)
    target.cycle = crossing  # target -> crossing -> target
    ref = weakref.ref(crossing)
    del crossing, target
    gc.collect()
    assert ref() is None


def test_thread_ends_and_replay_result_do_not_leak() -> None:
    value = object()
    gate = Gate()
    slow, record_result, record_error = handlers()

    def replay_result(crossing, recorded):
        return recorded

    boundary = Boundary(gate, slow, record_result, record_error, replay_result)
    crossing = Crossing(Target(), "k.f", boundary)
    shape, digest = fingerprint((1,))

    def run() -> None:
        log = EventLog([(1, 0, "k.f", shape, digest), (2, 0, value)] * 3)
        assert log.thread_ends() == {0: 5}
        boundary.mode = 2
        boundary.log = log
        with gate.scope(GateState.INSIDE, 0):
            assert crossing(1) is value  # answered by replay_result
        boundary.log = None
        boundary.mode = 0

    assert_no_leak(run, value, replay_result)


def test_replay_result_must_be_callable() -> None:
    with pytest.raises(TypeError):
        Boundary(Gate(), *handlers(), 5)
