"""Round-trip properties of the value encoding: every kind, exact floats, identity, hooks."""

from __future__ import annotations

import contextlib
import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retracesoftware import stream


def bits(f: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", f))[0]


def from_bits(b: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", b))[0]


def canon(v: Any) -> Any:
    """A hashable, type-exact description of a value (floats by their bits)."""
    t = type(v)
    if t is float:
        return ("float", bits(v))
    if t is complex:
        return ("complex", bits(v.real), bits(v.imag))
    if t in (tuple, list):
        return (t.__name__, tuple(canon(x) for x in v))
    if t in (set, frozenset):
        return (t.__name__, frozenset(canon(x) for x in v))
    if t is dict:
        return ("dict", tuple((canon(k), canon(x)) for k, x in v.items()))
    if t is bytearray:
        return ("bytearray", bytes(v))
    return (t.__name__, v)


IDENTITY_TYPES = (list, dict, set, frozenset, tuple, bytearray)


def shape(v: Any, seen: dict[int, int] | None = None) -> Any:
    """Describe the sharing structure of v: repeated containers become back-references."""
    if seen is None:
        seen = {}
    if type(v) in IDENTITY_TYPES:
        if id(v) in seen:
            return ("ref", seen[id(v)])
        seen[id(v)] = len(seen)
    if type(v) in (list, tuple):
        return (type(v).__name__, [shape(x, seen) for x in v])
    if type(v) is dict:
        return ("dict", [(shape(k, seen), shape(x, seen)) for k, x in v.items()])
    if type(v) in (set, frozenset):
        return (type(v).__name__, len(v))
    return canon(v)


floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(0, 2**64 - 1).map(from_bits),
    st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, 1e-310, 5e-324]),
)
texts = st.text(st.characters(exclude_categories=()), max_size=80)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.integers(min_value=-(2**300), max_value=2**300),
    floats,
    st.complex_numbers(allow_nan=True, allow_infinity=True),
    texts,
    st.binary(max_size=80),
)
hashables = st.recursive(
    scalars,
    lambda inner: st.one_of(st.tuples(inner, inner), st.frozensets(inner, max_size=4)),
    max_leaves=8,
)
values = st.recursive(
    st.one_of(scalars, st.binary(max_size=20).map(bytearray)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.lists(inner, max_size=20).map(tuple),
        st.dictionaries(hashables, inner, max_size=5),
        st.sets(hashables, max_size=5),
        st.frozensets(hashables, max_size=5),
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(values)
def test_round_trip_every_kind(v: Any) -> None:
    out = stream.loads(stream.dumps(v))
    assert canon(out) == canon(v)


@settings(max_examples=300, deadline=None)
@given(floats)
def test_float_bits_exact(f: float) -> None:
    assert bits(stream.loads(stream.dumps(f))) == bits(f)


@settings(max_examples=200, deadline=None)
@given(st.lists(floats, max_size=50))
def test_float_sequences_exact(fs: list[float]) -> None:
    # Consecutive floats are delta-coded against each other: check the chain stays exact.
    out = stream.loads(stream.dumps(fs))
    assert [bits(f) for f in out] == [bits(f) for f in fs]


@settings(max_examples=200, deadline=None)
@given(texts)
def test_str_any_code_point(s: str) -> None:
    assert stream.loads(stream.dumps(s)) == s


def test_lone_surrogates_and_pairs() -> None:
    for s in ["\ud800", "\udfff", "a\ud83dz", "\ud83d\ude00", "\U0001f600", "\x00", "é" * 100]:
        assert stream.loads(stream.dumps(s)) == s


def test_float_event_is_small() -> None:
    assert len(stream.dumps(1_700_000_000.123456)) - 1 <= 9
    assert len(stream.dumps(1.0)) - 1 <= 3
    assert len(stream.dumps(0.0)) - 1 == 1
    # A timestamp following a nearby one costs only its differing low bytes.
    a, b = 1_700_000_000.123456, 1_700_000_000.124001
    assert len(stream.dumps([a, b])) < len(stream.dumps([a])) + 9


def test_ints_of_any_size() -> None:
    for n in [0, 1, -1, 95, 96, -32, -33, 2**63 - 1, -(2**63), 2**63, 2**64, -(2**64), 10**5000]:
        assert stream.loads(stream.dumps(n)) == n
        assert type(stream.loads(stream.dumps(n))) is int
    assert len(stream.dumps(5)) == 2  # version byte + one opcode byte


def test_repeated_strings_are_interned() -> None:
    one = len(stream.dumps(["some/path/name.txt"]))
    many = len(stream.dumps(["some/path/name.txt"] * 50))
    assert many < one + 50 * 3
    out = stream.loads(stream.dumps(["abc", "abc"]))
    assert out[0] is out[1]


# ------------------------------------------------------------------ identity


def test_shared_references_keep_identity() -> None:
    inner = [1, 2]
    d = {"a": inner}
    v = [inner, inner, d, d, (inner,), bytearray(b"x")]
    v.append(v[5])
    out = stream.loads(stream.dumps(v))
    assert out[0] is out[1] and out[2] is out[3] and out[2]["a"] is out[0]
    assert out[4][0] is out[0] and out[5] is out[6]
    assert shape(out) == shape(v)


def test_cycles() -> None:
    lst: list[Any] = []
    lst.append(lst)
    out = stream.loads(stream.dumps(lst))
    assert out[0] is out

    d: dict[str, Any] = {}
    d["me"] = d
    out = stream.loads(stream.dumps(d))
    assert out["me"] is out

    # A cycle through a tuple (immutable, so it is built after its items).
    holder: list[Any] = []
    t = (holder, 1)
    holder.append(t)
    for root in (t, holder, [t, holder, t]):
        out = stream.loads(stream.dumps(root))
        assert shape(out) == shape(root)
    out = stream.loads(stream.dumps(t))
    assert out[0][0] is out


@st.composite
def shared_graphs(draw: st.DrawFn) -> Any:
    """Lists/dicts/tuples that share members and may contain cycles."""
    n = draw(st.integers(1, 6))
    nodes: list[Any] = []
    for _ in range(n):
        kind = draw(st.sampled_from(["list", "dict", "set"]))
        nodes.append([] if kind == "list" else {} if kind == "dict" else set())
    tuples: list[tuple[Any, ...]] = []
    for node in nodes:
        for _ in range(draw(st.integers(0, 4))):
            pick = draw(st.integers(0, n + len(tuples)))
            target: Any = (
                nodes[pick]
                if pick < n
                else (tuples[pick - n] if pick - n < len(tuples) else draw(scalars))
            )
            if draw(st.booleans()):
                target = (target, draw(st.integers(0, 3)))
                tuples.append(target)
            if isinstance(node, list):
                node.append(target)
            elif isinstance(node, dict):
                node[draw(st.integers(0, 20))] = target
            else:
                with contextlib.suppress(TypeError):
                    node.add(draw(hashables))
    return nodes


@settings(max_examples=300, deadline=None)
@given(shared_graphs())
def test_identity_property(nodes: Any) -> None:
    out = stream.loads(stream.dumps(nodes))
    assert shape(out) == shape(nodes)


# ------------------------------------------------------------------ limits


def test_depth_limit_is_a_clear_error() -> None:
    v: Any = 1
    for _ in range(stream.MAX_DEPTH - 1):
        v = [v]
    out = stream.loads(stream.dumps(v))
    for _ in range(stream.MAX_DEPTH - 1):
        out = out[0]
    assert out == 1
    for _ in range(5):
        v = [v]
    with pytest.raises(stream.StreamError, match="nested deeper than"):
        stream.dumps(v)


def test_unregistered_type_names_the_type() -> None:
    class Widget:
        pass

    with pytest.raises(
        stream.UnsupportedTypeError, match=r"test_values\.test_unregistered.*Widget"
    ):
        stream.dumps([1, Widget()])
    with pytest.raises(TypeError):  # also a TypeError for callers that expect one
        stream.dumps(Widget())


@pytest.mark.parametrize(
    "value",
    [
        type("IntSub", (int,), {})(3),
        type("StrSub", (str,), {})("x"),
        type("ListSub", (list,), {})(),
        type("DictSub", (dict,), {})(),
    ],
)
def test_subclasses_of_value_types_are_not_silently_flattened(value: Any) -> None:
    with pytest.raises(stream.UnsupportedTypeError, match=type(value).__name__):
        stream.dumps(value)


# ------------------------------------------------------------------ type hooks


class Point:
    def __init__(self, x: Any, y: Any) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    def __hash__(self) -> int:
        return hash((self.x, self.y))


def point_registry() -> stream.TypeRegistry:
    reg = stream.TypeRegistry()
    reg.register(Point, lambda p: (p.x, p.y), lambda s: Point(*s))
    return reg


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(scalars, scalars), max_size=10))
def test_hooks_round_trip(pairs: list[tuple[Any, Any]]) -> None:
    reg = point_registry()
    pts = [Point(x, y) for x, y in pairs]
    out = stream.loads(stream.dumps(pts, types=reg), types=reg)
    assert [(canon(p.x), canon(p.y)) for p in out] == [(canon(x), canon(y)) for x, y in pairs]


def test_hooks_identity_and_nesting() -> None:
    reg = point_registry()
    p = Point(1, Point(2.5, "z"))
    out = stream.loads(stream.dumps([p, p, {p: p}], types=reg), types=reg)
    assert out[0] is out[1] and out[0] == p and isinstance(out[0].y, Point)
    assert next(iter(out[2])) is out[0]


def test_hooks_cycle_through_custom_object() -> None:
    reg = point_registry()
    box: list[Any] = []
    p = Point(box, 0)
    box.append(p)
    out = stream.loads(stream.dumps(p, types=reg), types=reg)
    assert out.x[0] is out


def test_hooks_needed_on_read() -> None:
    reg = point_registry()
    data = stream.dumps(Point(1, 2), types=reg)
    with pytest.raises(stream.UnknownTypeError, match=r"test_values\.Point"):
        stream.loads(data, types=stream.TypeRegistry())


def test_decoder_failure_is_a_stream_error() -> None:
    reg = stream.TypeRegistry()
    reg.register(Point, lambda p: (p.x, p.y), lambda s: Point(*s))
    data = stream.dumps(Point(1, 2), types=reg)
    bad = stream.TypeRegistry()
    bad.register(Point, lambda p: None, lambda s: 1 / 0, name=reg.name_of(Point))
    with pytest.raises(stream.CorruptError, match="decoder accepts") as info:
        stream.loads(data, types=bad)
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_registry_validation() -> None:
    reg = stream.TypeRegistry()
    with pytest.raises(ValueError):
        reg.register(int, str, int)
    reg.register(Point, repr, repr, name="pt")
    with pytest.raises(ValueError, match="already registered"):
        reg.register(complex.__class__, repr, repr, name="pt")
    reg.unregister(Point)
    assert reg.name_of(Point) is None


def test_encoder_exceptions_propagate_and_dumps_stays_usable() -> None:
    reg = stream.TypeRegistry()

    def boom(_: Any) -> Any:
        raise RuntimeError("encoder failed")

    reg.register(Point, boom, lambda s: s)
    with pytest.raises(RuntimeError, match="encoder failed"):
        stream.dumps([1, Point(1, 2)], types=reg)


# ------------------------------------------------------------------ loads on bad input


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", stream.CorruptError),
        (b"\x02\x00", stream.UnsupportedVersionError),
        (b"\x01", stream.CorruptError),
        (b"\x01\x00\x00", stream.CorruptError),
        (b"\x01\x1e\xff\xff\xff\xff\x0f", stream.CorruptError),  # list of 4 G items
        (b"\x01\x18\x05ab", stream.CorruptError),  # str longer than the data
        (b"\x01\x18\x01\xff", stream.CorruptError),  # invalid UTF-8
        (b"\x01\x1a\x00", stream.CorruptError),  # string table is empty
        (b"\x01\x22\x00", stream.CorruptError),  # back-reference to nothing
        (b"\x01\x24\x00", stream.CorruptError),  # unbound handle
        (b"\x01\x1f\x01\x1e\x00\x00", stream.CorruptError),  # unhashable dict key
        (b"\x01\x30\x00", stream.CorruptError),  # record opcode where a value belongs
        (b"\x01" + b"\x41" * 5000 + b"\x00", stream.CorruptError),  # too deep
        (b"\x01\x03" + b"\xff" * 10 + b"\x01", stream.CorruptError),  # varint too long
    ],
)
def test_loads_rejects_bad_input(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        stream.loads(data)
