"""The native backend neither leaks memory nor references over a million calls."""

from __future__ import annotations

import contextlib
import gc
import sys
import tracemalloc
from collections.abc import Callable
from types import ModuleType

import pytest

CALLS = 1_000_000


def workloads(m: ModuleType) -> dict[str, Callable[[], object]]:
    def add(a, b=0, *, c=0):
        return a + b + c

    memo = m.memoize(add)
    lru = m.memoize(add, maxsize=8)
    big = m.partial(add, 1, c=1)
    d = m.dispatch(m.is_type(str), len, m.is_instance(int), m.identity, m.constantly(None))
    calls = {
        "compose": lambda: m.compose(add, m.identity, str)(1, 2),
        "partial": lambda: big(2),
        "partial-kw": lambda: big(2, c=3),
        "memoize": lambda: memo(1, 2),
        "memoize-kw": lambda: memo(1, c=2),
        "memoize-lru": lambda: lru(len(gc.get_stats()) % 16, 1),
        "dispatch": lambda: (d("ab"), d(3), d(2.5)),
        "predicates": lambda: m.and_(m.not_(m.is_type(str)), m.or_(callable, bool))(3),
        "juxt": lambda: m.juxt(m.arg(0), m.first_of(m.constantly(None), str))(1),
        "side_effect": lambda: m.side_effect(m.when(bool, str))(1),
        "ite": lambda: m.if_then_else(bool, str, repr)(0),
    }
    return calls


def measure(thunk: Callable[[], object], n: int) -> tuple[int, int]:
    """Memory growth and object-count growth over *n* calls."""
    for _ in range(1000):
        thunk()
    gc.collect()
    objects_before = len(gc.get_objects())
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(n):
        thunk()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, len(gc.get_objects()) - objects_before


@pytest.mark.slow
def test_million_calls_do_not_leak(native: ModuleType) -> None:
    thunks = workloads(native)
    per_thunk = CALLS // len(thunks)
    for name, thunk in thunks.items():
        grown, objects = measure(thunk, per_thunk)
        assert grown < 64 * 1024, f"{name}: {grown} bytes retained after {per_thunk} calls"
        assert objects < 50, f"{name}: {objects} objects retained"


def test_argument_refcounts_are_stable(native: ModuleType) -> None:
    value = object()
    combinators = [
        native.identity,
        native.compose(native.identity),
        native.partial(lambda *a, **k: None, value, k=value),
        native.memoize(lambda x: x),
        native.memoize(lambda x: x, maxsize=1),
        native.side_effect(native.constantly(value)),
        native.juxt(native.identity),
        native.arg(0),
    ]
    for combinator in combinators:
        combinator(value)  # populate caches first
        before = sys.getrefcount(value)
        for _ in range(1000):
            combinator(value)
        assert sys.getrefcount(value) == before, repr(combinator)


def test_construction_and_errors_do_not_leak(native: ModuleType) -> None:
    def churn() -> None:
        native.compose(len, str)
        native.partial(len, 1, x=2)
        native.dispatch(len, len, len)
        native.memoize(len, maxsize=3)
        for bad in (lambda: native.compose(), lambda: native.memoize(len)([1])):
            with contextlib.suppress(TypeError):
                bad()

    grown, objects = measure(churn, 50_000)
    assert grown < 64 * 1024
    assert objects < 50
