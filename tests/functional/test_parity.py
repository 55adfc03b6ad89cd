"""The two backends expose the same names and behave identically, case by case."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

import retracesoftware.functional as functional


def test_same_public_names(native: ModuleType, pure: ModuleType) -> None:
    public = set(functional.__all__) - {"backend", "backend_reason"}
    assert public == set(pure.__all__)
    for name in public:
        assert hasattr(native, name), name
        assert getattr(functional, name) is getattr(
            native if functional.backend == "native" else pure, name
        )


def test_same_type_names(native: ModuleType, pure: ModuleType) -> None:
    for name in pure.__all__:
        n, p = getattr(native, name), getattr(pure, name)
        nt, pt = (n, p) if isinstance(n, type) else (type(n), type(p))
        assert (nt.__name__, nt.__module__) == (pt.__name__, pt.__module__), name


def outcome(thunk: Callable[[], Any]) -> tuple[str, str]:
    """What a call did: ('ok', repr(result)) or (exception type, message)."""
    try:
        return ("ok", repr(thunk()))
    except Exception as exc:
        return (type(exc).__name__, str(exc))


# Each case builds a combinator from a backend module and calls it.
CASES: dict[str, Callable[[ModuleType], Any]] = {
    "compose-repr": lambda m: m.compose(len, str),
    "compose-call": lambda m: m.compose(len, str)([1, 2]),
    "compose-empty": lambda m: m.compose(),
    "compose-kw": lambda m: m.compose(len, x=1),
    "compose-noncallable": lambda m: m.compose(len, None),
    "sequence-call": lambda m: m.sequence(len, sum)([1, 2]),
    "juxt-call": lambda m: m.juxt(len, sum)([1, 2]),
    "first_of-call": lambda m: m.first_of(lambda x: None, len)([1]),
    "partial-repr": lambda m: m.partial(max, 1, 2, key=abs),
    "partial-call": lambda m: m.partial(max, 1, key=abs)(-3),
    "partial-empty": lambda m: m.partial(),
    "partial-noncallable": lambda m: m.partial(3, 4),
    "dispatch-repr": lambda m: m.dispatch(callable, len, str),
    "dispatch-nomatch": lambda m: m.dispatch(callable, len)(3),
    "dispatch-short": lambda m: m.dispatch(len),
    "dispatch-kw": lambda m: m.dispatch(len, len, default=len),
    "memoize-repr": lambda m: m.memoize(len),
    "memoize-repr-bounded": lambda m: m.memoize(len, maxsize=4),
    "memoize-unhashable": lambda m: m.memoize(len)([1]),
    "memoize-unhashable-kw": lambda m: m.memoize(lambda **k: 1)(a=[1]),
    "memoize-badsize": lambda m: m.memoize(len, 1.5),
    "memoize-negsize": lambda m: m.memoize(len, -1),
    "memoize-hugesize": lambda m: m.memoize(len, 2**70),
    "memoize-nofunc": lambda m: m.memoize(),
    "memoize-3args": lambda m: m.memoize(len, 1, 2),
    "memoize-badkw": lambda m: m.memoize(len, typed=True),
    "memoize-dupkw": lambda m: m.memoize(len, 3, maxsize=3),
    "memoize-info": lambda m: m.memoize(len, 3).cache_info(),
    "is_instance-repr": lambda m: m.is_instance((int, str)),
    "is_instance-bad": lambda m: m.is_instance([int]),
    "is_instance-args": lambda m: m.is_instance(int)(),
    "is_type-bad": lambda m: m.is_type((int,)),
    "is_type-none": lambda m: m.is_type(),
    "and-repr": lambda m: m.and_(callable, bool),
    "and-empty": lambda m: m.and_(),
    "or-noncallable": lambda m: m.or_(bool, 1),
    "not-repr": lambda m: m.not_(bool),
    "not-kw": lambda m: m.not_(predicate=bool),
    "when-repr": lambda m: m.when(bool, str),
    "when-arity": lambda m: m.when(bool),
    "ite-repr": lambda m: m.if_then_else(bool, str, repr),
    "ite-arity": lambda m: m.if_then_else(bool, str, repr, len),
    "constantly-repr": lambda m: m.constantly("v"),
    "constantly-kw": lambda m: m.constantly(value=1),
    "side_effect-repr": lambda m: m.side_effect(print),
    "side_effect-noargs": lambda m: m.side_effect(print)(),
    "side_effect-bad": lambda m: m.side_effect(None),
    "arg-repr": lambda m: m.arg(3),
    "arg-short": lambda m: m.arg(3)(1, 2),
    "arg-bad": lambda m: m.arg(1.0),
    "arg-neg": lambda m: m.arg(-2),
    "arg-huge": lambda m: m.arg(2**70),
    "identity-args": lambda m: m.identity(1, 2),
    "identity-kw": lambda m: m.identity(x=2),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_backends_agree(case: str, native: ModuleType, pure: ModuleType) -> None:
    build = CASES[case]
    assert outcome(lambda: build(native)) == outcome(lambda: build(pure))
