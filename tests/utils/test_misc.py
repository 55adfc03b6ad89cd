"""StackFactory, InterceptDict, EventLog, fingerprints."""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retracesoftware.proxy.fingerprint import fingerprint as full_fingerprint
from retracesoftware.proxy.fingerprint import reference_fingerprint as py_fingerprint
from retracesoftware.utils import EventLog, InterceptDict, StackFactory, fingerprint


def here() -> tuple:
    return StackFactory()(limit=1)[0]


def test_stack_factory_reports_innermost_frame_first():
    frame = here()
    assert frame[0] == __file__ and frame[2] == "here"
    outer = StackFactory()()
    assert outer[0][2] == "test_stack_factory_reports_innermost_frame_first"
    assert len(StackFactory()(limit=2)) == 2


def test_stack_factory_skips_prefixes():
    skip = StackFactory(skip=(os.path.dirname(__file__),))
    assert all(not f[0].startswith(os.path.dirname(__file__)) for f in skip())
    with pytest.raises(TypeError):
        StackFactory(skip=[1])


def test_intercept_dict_reports_assignments_and_deletions():
    seen = []
    d = InterceptDict(a=1)
    d.on_set = lambda k, v: seen.append(("set", k, v))
    d.on_delete = lambda k: seen.append(("del", k))
    d["b"] = 2
    del d["a"]
    assert seen == [("set", "b", 2), ("del", "a")]
    assert d == {"b": 2} and isinstance(d, dict)
    with pytest.raises(KeyError):
        del d["missing"]
    assert len(seen) == 2
    d.on_set = None
    d["c"] = 3
    assert len(seen) == 2
    with pytest.raises(TypeError):
        d.on_set = 5


def test_intercept_dict_hook_error_propagates():
    d = InterceptDict()

    def boom(k, v):
        raise ValueError(k)

    d.on_set = boom
    with pytest.raises(ValueError):
        d["x"] = 1
    assert d["x"] == 1  # the assignment happened before the hook


def test_event_log_roundtrip_and_cursor():
    log = EventLog([(1, 0, "k", "s", 5), (2, 0, 1.5)])
    log.append((7, 3))
    assert len(log) == 3 and log[2] == (7, 3)
    assert log.peek_thread() == 0
    assert log.take() == (1, 0, "k", "s", 5)
    assert log.pos == 1
    assert log.peek() == (2, 0, 1.5)
    log.pos = 3
    assert log.peek() is None and log.take() is None and log.peek_thread() is None
    assert log.events == ((1, 0, "k", "s", 5), (2, 0, 1.5), (7, 3))
    with pytest.raises(ValueError):
        log.pos = 4
    with pytest.raises(IndexError):
        log[3]
    for bad in [("x", 0), (1,), (1, 0, 1, 2, 3, 4), [1, 0]]:
        with pytest.raises(ValueError):
            log.append(bad)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=80),
    st.binary(max_size=80),
)


@given(st.lists(scalars, max_size=6))
def test_native_and_python_fingerprints_agree(args):
    native = fingerprint(tuple(args))
    assert native is not None
    assert py_fingerprint(tuple(args), None) == native
    assert full_fingerprint(tuple(args), None) == native


class Opaque:
    pass


class MyInt(int):
    pass


class MyStr(str):
    def __str__(self) -> str:
        return "overridden"


values = st.recursive(
    st.one_of(
        scalars,
        st.integers(),
        st.complex_numbers(allow_nan=False),
        st.builds(Opaque),
        st.builds(MyInt, st.integers()),
        st.builds(MyStr, st.text(max_size=5)),
        st.frozensets(st.integers(), max_size=3),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=20),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=3), inner, max_size=20),
        st.sets(st.integers(), max_size=4),
    ),
    max_leaves=30,
)


@given(st.lists(values, max_size=4), st.dictionaries(st.text(max_size=4), values, max_size=3))
def test_full_native_fingerprint_matches_the_reference(args, kwargs):
    def classify(obj):
        return ("F", b"x") if isinstance(obj, Opaque) and id(obj) % 2 else None

    expected = py_fingerprint(tuple(args), kwargs, classify)
    assert full_fingerprint(tuple(args), kwargs, classify) == expected


def test_native_fingerprint_declines_non_scalars():
    assert fingerprint(([],)) is None
    assert fingerprint((2**70,)) is None
    assert fingerprint((1.5j,)) is None
    assert fingerprint((math.inf, "s", b"b", None, True))[0] == "fsyNb"


def test_fingerprint_distinguishes_values_and_shapes():
    assert py_fingerprint(("a",), None) != py_fingerprint(("b",), None)
    assert py_fingerprint((1,), None)[0] != py_fingerprint((1.0,), None)[0]
    assert py_fingerprint((), {"k": 1})[0] == ",k=i"
    s1 = py_fingerprint(({1, 2, 3},), None)
    assert s1 == py_fingerprint(({3, 2, 1},), None)
