"""Behaviour of every combinator, run against both backends."""

from __future__ import annotations

import gc
import threading
from types import ModuleType

import pytest


def add(a, b=0, *, c=0):
    return a + b + c


def record(log):
    def f(*args, **kwargs):
        log.append((args, kwargs))
        return len(log)

    return f


class Boom(Exception):
    pass


def boom(*args, **kwargs):
    raise Boom(args, kwargs)


# -- identity, constantly, arg ---------------------------------------------------------


def test_identity(fn: ModuleType) -> None:
    marker = object()
    assert fn.identity(marker) is marker
    assert repr(fn.identity) == "identity"
    assert fn.identity.__name__ == "identity"
    with pytest.raises(TypeError, match=r"identity\(\) takes exactly 1 argument \(0 given\)"):
        fn.identity()
    with pytest.raises(TypeError, match=r"identity\(\) takes exactly 1 argument \(2 given\)"):
        fn.identity(1, 2)
    with pytest.raises(TypeError, match=r"identity\(\) takes no keyword arguments"):
        fn.identity(x=1)


def test_constantly(fn: ModuleType) -> None:
    value = [1]
    c = fn.constantly(value)
    assert c() is value
    assert c(1, 2, x=3) is value
    assert c.value is value
    assert repr(c) == "constantly([1])"
    with pytest.raises(TypeError, match=r"constantly\(\) takes exactly 1 argument \(0 given\)"):
        fn.constantly()


def test_arg(fn: ModuleType) -> None:
    second = fn.arg(1)
    assert second("a", "b", "c", key=1) == "b"
    assert second.index == 1
    assert repr(second) == "arg(1)"
    with pytest.raises(TypeError, match=r"arg\(1\) needs at least 2 positional arguments"):
        second("a")
    with pytest.raises(TypeError, match=r"arg\(\) index must be an int, not str"):
        fn.arg("1")
    with pytest.raises(TypeError, match=r"arg\(\) index must be an int, not bool"):
        fn.arg(True)
    with pytest.raises(ValueError, match=r"arg\(\) index must be >= 0, not -1"):
        fn.arg(-1)
    with pytest.raises(OverflowError):
        fn.arg(2**80)


# -- compose, sequence, juxt, first_of --------------------------------------------------


def test_compose_applies_left_to_right(fn: ModuleType) -> None:
    c = fn.compose(add, str, lambda s: s + "!")
    assert c(1, 2, c=3) == "6!"
    assert c.functions[0] is add
    assert fn.compose(len)([1, 2]) == 2


def test_compose_propagates_exceptions(fn: ModuleType) -> None:
    with pytest.raises(Boom):
        fn.compose(str, boom, str)(1)
    with pytest.raises(Boom):
        fn.compose(boom, str)(1)


def test_sequence_returns_last_and_calls_all(fn: ModuleType) -> None:
    log: list = []
    s = fn.sequence(record(log), record(log), lambda *a, **k: "last")
    assert s(1, x=2) == "last"
    assert log == [((1,), {"x": 2}), ((1,), {"x": 2})]


def test_sequence_stops_at_exception(fn: ModuleType) -> None:
    log: list = []
    with pytest.raises(Boom):
        fn.sequence(boom, record(log))(1)
    assert log == []


def test_juxt(fn: ModuleType) -> None:
    assert fn.juxt(len, sum, max)([1, 2, 3]) == (3, 6, 3)
    with pytest.raises(Boom):
        fn.juxt(len, boom)([1])


def test_first_of(fn: ModuleType) -> None:
    f = fn.first_of(lambda x: None, lambda x: x or None, lambda x: "fallback")
    assert f(0) == "fallback"
    assert f(5) == 5
    assert fn.first_of(lambda x: None)(1) is None
    assert fn.first_of(lambda x: 0, lambda x: 1)(1) == 0  # 0 is not None


@pytest.mark.parametrize("name", ["compose", "sequence", "juxt", "first_of"])
def test_function_combinators_validate(fn: ModuleType, name: str) -> None:
    factory = getattr(fn, name)
    with pytest.raises(TypeError, match=rf"{name}\(\) needs at least one function"):
        factory()
    with pytest.raises(TypeError, match=rf"{name}\(\) argument 2 must be callable, not int"):
        factory(len, 3)
    with pytest.raises(TypeError, match=rf"{name}\(\) takes no keyword arguments"):
        factory(len, f=len)
    assert repr(factory(len, abs)) == f"{name}(<built-in function len>, <built-in function abs>)"


# -- partial ----------------------------------------------------------------------------


def test_partial(fn: ModuleType) -> None:
    p = fn.partial(add, 1)
    assert p(2) == 3
    assert p(2, c=10) == 13
    assert p.func is add and p.args == (1,) and p.keywords == {}


def test_partial_keywords_merge_and_override(fn: ModuleType) -> None:
    p = fn.partial(add, c=5)
    assert p(1) == 6
    assert p(1, c=1) == 2
    assert p(1, 2) == 8
    assert repr(p) == f"partial({add!r}, c=5)"
    q = fn.partial(dict, 1) if False else fn.partial(dict, a=1)
    assert q(b=2) == {"a": 1, "b": 2}


def test_partial_many_arguments(fn: ModuleType) -> None:
    p = fn.partial(lambda *a, **k: (a, k), *range(12), z=1)
    assert p(*range(12, 20), y=2) == (tuple(range(20)), {"z": 1, "y": 2})
    r = fn.partial(lambda *a, **k: (a, k), *range(12))
    assert r(*range(12, 20), y=2) == (tuple(range(20)), {"y": 2})


def test_partial_does_not_share_keywords_between_calls(fn: ModuleType) -> None:
    p = fn.partial(lambda **k: k, a=1)
    first = p(b=2)
    first["c"] = 3
    assert p() == {"a": 1}


def test_partial_validates(fn: ModuleType) -> None:
    with pytest.raises(TypeError, match=r"partial\(\) needs at least one argument"):
        fn.partial()
    with pytest.raises(TypeError, match=r"partial\(\) argument 1 must be callable, not int"):
        fn.partial(1)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        fn.partial(add, 1)(2, nope=3)


# -- dispatch ---------------------------------------------------------------------------


def test_dispatch_first_match_wins(fn: ModuleType) -> None:
    d = fn.dispatch(
        fn.is_instance(bool), lambda x: "bool",
        fn.is_instance(int), lambda x: "int",
        lambda x: "other",
    )  # fmt: skip
    assert d(True) == "bool"
    assert d(3) == "int"
    assert d("s") == "other"
    assert len(d.branches) == 2
    assert d.default is not None


def test_dispatch_without_default(fn: ModuleType) -> None:
    d = fn.dispatch(fn.is_type(int), str)
    assert d(3) == "3"
    assert d.default is None
    with pytest.raises(TypeError, match="dispatch: no predicate matched and there is no default"):
        d(3.0)


def test_dispatch_passes_keywords_and_validates(fn: ModuleType) -> None:
    d = fn.dispatch(lambda *a, **k: "x" in k, lambda *a, **k: k["x"], lambda *a, **k: a)
    assert d(1, x=2) == 2
    assert d(1) == (1,)
    with pytest.raises(TypeError, match="needs at least one predicate and function pair"):
        fn.dispatch(len)
    with pytest.raises(TypeError, match=r"dispatch\(\) argument 2 must be callable, not str"):
        fn.dispatch(len, "x")
    assert repr(fn.dispatch(len, abs, str)) == (
        "dispatch(<built-in function len>, <built-in function abs>, <class 'str'>)"
    )


# -- predicates -------------------------------------------------------------------------


def test_is_instance_and_is_type(fn: ModuleType) -> None:
    assert fn.is_instance(int)(True) is True
    assert fn.is_instance((str, bytes))(b"x") is True
    assert fn.is_instance(str)(1) is False
    assert fn.is_type(int)(True) is False
    assert fn.is_type(bool)(True) is True
    assert fn.is_type(int).cls is int
    assert repr(fn.is_type(int)) == "is_type(<class 'int'>)"
    with pytest.raises(TypeError, match=r"is_instance\(\) argument must be a type or a tuple"):
        fn.is_instance(3)
    with pytest.raises(TypeError, match=r"is_type\(\) argument must be a type, not tuple"):
        fn.is_type((int,))
    with pytest.raises(TypeError, match=r"is_type\(\) takes exactly 1 argument \(2 given\)"):
        fn.is_type(int)(1, 2)
    with pytest.raises(TypeError, match=r"is_instance\(\) takes no keyword arguments"):
        fn.is_instance(int)(x=1)


def test_and_or_not_short_circuit(fn: ModuleType) -> None:
    calls: list[str] = []

    def p(name, value):
        def predicate(*args):
            calls.append(name)
            return value

        return predicate

    assert fn.and_(p("a", 1), p("b", 0), p("c", 1))() is False
    assert calls == ["a", "b"]
    calls.clear()
    assert fn.or_(p("a", 0), p("b", "yes"), p("c", 1))() is True
    assert calls == ["a", "b"]
    assert fn.and_(p("a", 1))() is True
    assert fn.or_(p("a", 0))() is False
    assert fn.not_(p("a", []))() is True
    assert fn.not_(len)([1]) is False
    with pytest.raises(TypeError, match=r"and_\(\) needs at least one predicate"):
        fn.and_()
    with pytest.raises(TypeError, match=r"not_\(\) takes exactly 1 argument \(2 given\)"):
        fn.not_(len, len)


def test_truthiness_errors_propagate(fn: ModuleType) -> None:
    class Bad:
        def __bool__(self):
            raise Boom()

    for combinator in (fn.and_, fn.or_, fn.not_):
        with pytest.raises(Boom):
            combinator(lambda: Bad())()
    with pytest.raises(Boom):
        fn.when(lambda: Bad(), len)()


# -- when, if_then_else -----------------------------------------------------------------


def test_when(fn: ModuleType) -> None:
    w = fn.when(fn.is_instance(int), lambda x: x * 2)
    assert w(4) == 8
    assert w("s") is None
    assert w.predicate is not None and w.function is not None
    with pytest.raises(TypeError, match=r"when\(\) takes exactly 2 arguments \(1 given\)"):
        fn.when(len)
    with pytest.raises(TypeError, match=r"when\(\) argument 2 must be callable, not int"):
        fn.when(len, 1)


def test_if_then_else(fn: ModuleType) -> None:
    f = fn.if_then_else(lambda x, **k: x > 0, lambda x, **k: ("pos", k), lambda x, **k: "neg")
    assert f(1, k=2) == ("pos", {"k": 2})
    assert f(-1) == "neg"
    assert (f.then, f.otherwise) != (None, None)
    with pytest.raises(TypeError, match=r"if_then_else\(\) argument 3 must be callable"):
        fn.if_then_else(len, len, None)


# -- side_effect ------------------------------------------------------------------------


def test_side_effect_returns_first_argument(fn: ModuleType) -> None:
    log: list = []
    s = fn.side_effect(record(log))
    marker = object()
    assert s(marker, 2, k=3) is marker
    assert log == [((marker, 2), {"k": 3})]
    assert s.__wrapped__ is not None
    assert s.__name__ == "f"
    with pytest.raises(TypeError, match="needs at least one positional argument"):
        s()
    with pytest.raises(Boom):
        fn.side_effect(boom)(1)


def test_side_effect_keeps_argument_alive(fn: ModuleType) -> None:
    holder = [object()]
    result = fn.side_effect(lambda x: holder.clear())(holder[0])
    assert holder == [] and result is not None


# -- memoize ----------------------------------------------------------------------------


def test_memoize_caches_by_arguments(fn: ModuleType) -> None:
    log: list = []
    m = fn.memoize(record(log))
    assert m(1) == 1
    assert m(1) == 1
    assert m(2) == 2
    assert m(1, k=1) == 3
    assert m(1, k=1) == 3
    assert m.cache_info() == (2, 3, None, 3)
    m.cache_clear()
    assert m.cache_info() == (0, 0, None, 0)
    assert m(1) == 4


def test_memoize_key_semantics(fn: ModuleType) -> None:
    log: list = []
    m = fn.memoize(record(log))
    m(1)
    m(1.0)  # equal and same hash: same entry, as in a dict
    m(True)
    assert len(log) == 1
    m((1,))  # a tuple argument is not the same as the argument itself
    m(a=1, b=2)
    m(b=2, a=1)  # keyword order is part of the key
    assert len(log) == 4


def test_memoize_bounded_is_lru(fn: ModuleType) -> None:
    log: list = []
    m = fn.memoize(lambda x: log.append(x) or x, maxsize=2)
    for x in (1, 2, 1, 3, 1, 2):
        m(x)
    assert log == [1, 2, 3, 2]  # 2 was evicted when 3 arrived; 3 when 2 came back
    assert m.cache_info() == (2, 4, 2, 2)
    assert repr(m).endswith(", maxsize=2)")


def test_memoize_does_not_cache_exceptions(fn: ModuleType) -> None:
    attempts: list = []

    def flaky(x):
        attempts.append(x)
        if len(attempts) == 1:
            raise Boom()
        return x

    m = fn.memoize(flaky)
    with pytest.raises(Boom):
        m(1)
    assert m(1) == 1
    assert m(1) == 1
    assert attempts == [1, 1]


def test_memoize_unhashable_arguments(fn: ModuleType) -> None:
    m = fn.memoize(len)
    with pytest.raises(TypeError, match=r"memoize: arguments must be hashable \(unhashable type"):
        m([1, 2])
    try:
        m(x={})
    except TypeError as exc:
        assert isinstance(exc.__cause__, TypeError)
    assert m.cache_info() == (0, 0, None, 0)


def test_memoize_validates(fn: ModuleType) -> None:
    with pytest.raises(TypeError, match=r"memoize\(\) argument 1 must be callable, not int"):
        fn.memoize(1)
    with pytest.raises(TypeError, match=r"memoize\(\) maxsize must be an int or None, not str"):
        fn.memoize(len, "2")
    with pytest.raises(ValueError, match=r"memoize\(\) maxsize must be >= 1, not 0"):
        fn.memoize(len, maxsize=0)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'size'"):
        fn.memoize(len, size=1)
    with pytest.raises(TypeError, match=r"multiple values for argument 'maxsize'"):
        fn.memoize(len, 1, maxsize=1)
    with pytest.raises(TypeError, match=r"memoize\(\) takes 1 or 2 positional arguments \(0"):
        fn.memoize()


def test_memoize_recursion_is_reentrant(fn: ModuleType) -> None:
    @fn.memoize
    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    assert fib(80) == 23416728348467685
    assert fib.__name__ == "fib"
    assert fib.cache_info()[1] == 81

    @fn.memoize
    def clearing(n):
        clearing.cache_clear()
        return n if n == 0 else clearing(n - 1) + 1

    assert clearing(20) == 20


def test_memoize_bounded_recursion(fn: ModuleType) -> None:
    calls = []

    def fib(n):
        calls.append(n)
        return n if n < 2 else memo(n - 1) + memo(n - 2)

    memo = fn.memoize(fib, maxsize=3)
    assert memo(30) == 832040
    assert memo.cache_info()[3] == 3


def test_memoize_binds_as_method(fn: ModuleType) -> None:
    class Thing:
        def __init__(self, base):
            self.base = base

        @fn.memoize
        def plus(self, x):
            return self.base + x

    a, b = Thing(1), Thing(10)
    assert a.plus(1) == 2
    assert b.plus(1) == 11
    assert Thing.plus.__name__ == "plus"
    assert Thing.plus(a, 5) == 6


def test_wrapper_name_fallback(fn: ModuleType) -> None:
    class Callable:
        def __call__(self, x):
            return x

    assert fn.memoize(Callable()).__name__ == "memoize"
    assert fn.side_effect(Callable()).__name__ == "side_effect"


# -- reentrancy, threads, lifetime -------------------------------------------------------


def test_reentrant_combinators(fn: ModuleType) -> None:
    def countdown(n):
        return 0 if n == 0 else composed(n - 1) + 1

    composed = fn.compose(fn.identity, countdown)
    assert composed(50) == 50
    p = fn.partial(lambda f, n: 0 if n == 0 else f(f, n - 1) + 1)
    assert p(p, 30) == 30


def test_threads_share_combinators(fn: ModuleType) -> None:
    m = fn.memoize(lambda x: x * x, maxsize=64)
    c = fn.compose(m, fn.partial(add, 1))
    errors = []

    def work():
        try:
            for i in range(2000):
                assert c(i % 100) == (i % 100) ** 2 + 1
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_cycles_are_collected(fn: ModuleType) -> None:
    import weakref

    class Target:
        def __call__(self, *a):
            return a

    target = Target()
    wr = weakref.ref(target)
    target.self_ref = fn.partial(target)
    target.memo = fn.memoize(target)
    target.memo(target)
    del target
    gc.collect()
    assert wr() is None


def test_attributes_are_read_only_on_native(native: ModuleType) -> None:
    c = native.compose(len)
    with pytest.raises(AttributeError):
        c.functions = ()
