"""A second reader, written from docs/format.md alone, agrees with the native one.

It is deliberately simple (pure Python, its own CRC-32C) and is used only as an oracle.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retracesoftware import stream

MAGIC = bytes.fromhex("8952545243 0D0A1A".replace(" ", ""))


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


class SpecError(Exception):
    pass


class Bound:
    def __init__(self, handle: int) -> None:
        self.handle = handle


class SpecReader:
    """Decoder state of docs/format.md: thread, strings, types, handles, float register."""

    def __init__(self, decoders: dict[str, Any]) -> None:
        self.decoders = decoders
        self.thread = 0
        self.strings: list[str] = []
        self.types: list[Any] = []
        self.handles: dict[int, Any] = {}
        self.next_handle = 0
        self.register = 0
        self.buf = b""
        self.pos = 0
        self.memo: list[Any] = []
        self.replaced = 0

    def byte(self) -> int:
        if self.pos >= len(self.buf):
            raise SpecError("past end")
        self.pos += 1
        return self.buf[self.pos - 1]

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise SpecError("past end")
        self.pos += n
        return self.buf[self.pos - n : self.pos]

    def varint(self) -> int:
        v = shift = 0
        while True:
            b = self.byte()
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7

    def float_bits(self, bits: int) -> float:
        self.register = bits
        return struct.unpack("<d", bits.to_bytes(8, "little"))[0]

    def value(self) -> Any:
        op = self.byte()
        if op >= 0x80:
            return op - 0xA0
        if 0x40 <= op <= 0x4F:
            return self.tuple_of(op - 0x40)
        if op in (0, 1, 2):
            return (None, False, True)[op]
        if op == 0x03:
            return self.varint()
        if op == 0x04:
            return -1 - self.varint()
        if op == 0x05:
            return int.from_bytes(self.take(self.varint()), "little", signed=True)
        if op == 0x06:
            return self.float_bits(int.from_bytes(self.take(8), "little"))
        if op == 0x07:
            return self.float_bits(self.register)
        if 0x08 <= op <= 0x0E:
            k = op - 0x07
            return self.float_bits(self.register ^ int.from_bytes(self.take(k), "little"))
        if 0x0F <= op <= 0x16:
            k = op - 0x0F
            v = int.from_bytes(self.take(k), "little")
            return self.float_bits(v << (64 - 8 * k) if k else 0)
        if op == 0x17:
            re, im = struct.unpack("<dd", self.take(16))
            return complex(re, im)
        if op in (0x18, 0x19):
            s = self.take(self.varint()).decode("utf-8", "surrogatepass")
            if op == 0x19:
                self.strings.append(s)
            return s
        if op == 0x1A:
            return self.strings[self.varint()]
        if op == 0x1B:
            return self.take(self.varint())
        if op == 0x1C:
            b = bytearray(self.take(self.varint()))
            self.memo.append(b)
            return b
        if op == 0x1D:
            return self.tuple_of(self.varint())
        if op == 0x1E:
            lst: list[Any] = []
            self.memo.append(lst)
            for _ in range(self.varint()):
                lst.append(self.value())
            return lst
        if op == 0x1F:
            d: dict[Any, Any] = {}
            self.memo.append(d)
            for _ in range(self.varint()):
                k = self.value()
                d[k] = self.value()
            return d
        if op == 0x20:
            s_: set[Any] = set()
            self.memo.append(s_)
            for _ in range(self.varint()):
                s_.add(self.value())
            return s_
        if op == 0x21:
            fs = frozenset(self.value() for _ in range(self.varint()))
            self.memo.append(fs)
            return fs
        if op == 0x22:
            return self.memo[self.varint()]
        if op == 0x23:
            self.replaced += 1
            self.value()
            self.memo.pop()
            return self.memo[self.varint()]
        if op == 0x24:
            return self.handles[self.varint()]
        if op == 0x25:
            self.types.append(self.decoders[self.take(self.varint()).decode()])
            return self.custom(self.types[-1])
        if op == 0x26:
            return self.custom(self.types[self.varint()])
        raise SpecError(f"opcode {op:#x}")

    def tuple_of(self, n: int) -> tuple[Any, ...]:
        t = tuple(self.value() for _ in range(n))
        self.memo.append(t)
        return t

    def custom(self, decode: Any) -> Any:
        obj = decode(self.value())
        self.memo.append(obj)
        return obj

    def read(self, data: bytes) -> tuple[dict[str, Any], list[tuple[int, Any]]]:
        if data[:8] != MAGIC:
            raise SpecError("magic")
        major, _minor = struct.unpack_from("<HH", data, 8)
        assert major == 1
        off, frames, events, header = 12, 0, [], None
        while True:
            kind, n, pcrc, hcrc = struct.unpack_from("<BIII", data, off)
            if crc32c(data[off : off + 9]) != hcrc:
                raise SpecError("header crc")
            payload = data[off + 13 : off + 13 + n]
            if len(payload) != n or crc32c(data[off : off + 5] + payload) != pcrc:
                raise SpecError("payload")
            off += 13 + n
            if kind == 0x01:
                fresh = SpecReader({})
                fresh.buf = payload
                header = fresh.value()
            elif kind == 0x02:
                frames += 1
                self.buf, self.pos = payload, 0
                while self.pos < len(payload):
                    op = payload[self.pos]
                    if op == 0x30:
                        self.pos += 1
                        self.thread = self.varint()
                    elif op == 0x31:
                        self.pos += 1
                        self.handles[self.next_handle] = Bound(self.next_handle)
                        self.next_handle += 1
                    elif op == 0x32:
                        self.pos += 1
                        del self.handles[self.varint()]
                    else:
                        self.memo = []
                        events.append((self.thread, self.value()))
            else:
                count, nframes = struct.unpack_from("<QQ", payload)
                assert payload[16:] == b"RTRCEND\n" and off == len(data)
                assert (count, nframes) == (len(events), frames)
                assert isinstance(header, dict)
                return header, events


def canon(v: Any, seen: dict[int, int] | None = None) -> Any:
    """Type-exact description with floats by bits and shared containers as back-references."""
    seen = {} if seen is None else seen
    t = type(v)
    if t in (list, dict, set, frozenset, tuple, bytearray) or hasattr(v, "handle"):
        if id(v) in seen:
            return ("ref", seen[id(v)])
        seen[id(v)] = len(seen)
    if t is float:
        return ("float", struct.pack("<d", v))
    if t is complex:
        return ("complex", struct.pack("<dd", v.real, v.imag))
    if t in (list, tuple):
        return (t.__name__, [canon(x, seen) for x in v])
    if t is dict:
        return ("dict", [(canon(k, seen), canon(x, seen)) for k, x in v.items()])
    if t in (set, frozenset):
        return (t.__name__, sorted(repr(canon(x, {})) for x in v))
    if hasattr(v, "handle"):
        return ("handle", v.handle)
    if t is Pair:
        return ("Pair", canon(v.a, seen), canon(v.b, seen))
    return (t.__name__, v)


class Pair:
    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b


REG = stream.TypeRegistry()
REG.register(Pair, lambda p: (p.a, p.b), lambda s: Pair(*s), name="spec.Pair")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**100), 2**100),
    st.floats(),
    st.complex_numbers(),
    st.text(st.characters(exclude_categories=()), max_size=10),
    st.sampled_from(["GET", "/srv/x", "utf-8"]),
    st.binary(max_size=10),
)
hashables = st.recursive(scalars, lambda i: st.tuples(i, i), max_leaves=4)
values = st.recursive(
    st.one_of(scalars, st.binary(max_size=4).map(bytearray)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=18).map(tuple),
        st.dictionaries(hashables, inner, max_size=3),
        st.sets(hashables, max_size=3),
        st.frozensets(hashables, max_size=3),
        st.builds(Pair, inner, inner),
    ),
    max_leaves=12,
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.integers(0, 3), values, st.integers(0, 4)), max_size=20))
def test_spec_reader_agrees(tmp_path: Path, events: list[tuple[int, Any, int]]) -> None:
    path = tmp_path / "spec.retrace"
    objs = [bytearray(b"h") for _ in range(3)]
    bound: set[int] = set()
    with stream.Writer(path, types=REG, frame_size=128, metadata={"k": [1.5]}) as w:
        for tid, v, extra in events:
            if extra < 3:
                if extra not in bound:
                    w.bind(objs[extra], tid)
                    bound.add(extra)
                v = [v, objs[extra], v]
            elif extra == 4 and bound:
                w.unbind(objs[bound.pop()])
            w.write(v, thread=tid)
    data = path.read_bytes()
    header, spec_events = SpecReader({"spec.Pair": lambda s: Pair(*s)}).read(data)
    with stream.Reader(data, types=REG) as r:
        native = list(r.events())
        assert header == r.header_dict
    assert [(t, canon(v)) for t, v in spec_events] == [(t, canon(v)) for t, v in native]


def test_spec_crc_matches_native() -> None:
    from retracesoftware.stream import _stream

    for data in (b"", b"123456789", bytes(range(256)) * 3):
        assert crc32c(data) == _stream.crc32c(data)


def test_spec_reader_cycles(tmp_path: Path) -> None:
    holder: list[Any] = []
    t = (holder, 1.0)
    holder.append(t)
    box: list[Any] = []
    p = Pair(box, "x")
    box.append(p)
    path = tmp_path / "cycles.retrace"
    with stream.Writer(path, types=REG) as w:
        for v in (t, holder, [t, holder, p, box], p):
            w.write(v)
    data = path.read_bytes()
    spec = SpecReader({"spec.Pair": lambda s: Pair(*s)})
    _, spec_events = spec.read(data)
    assert spec.replaced >= 2  # cycles through a tuple and through a custom object
    with stream.Reader(data, types=REG) as r:
        native = list(r.events())
    assert [(t, canon(v)) for t, v in spec_events] == [(t, canon(v)) for t, v in native]
    first = spec_events[0][1]
    assert first[0][0] is first
