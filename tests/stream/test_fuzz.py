"""Fuzz the reader: mutated, truncated and spliced recordings give values or a StreamError.

The normal suite runs tens of thousands of cases; ``nox -s fuzz`` raises the count through
``RETRACE_FUZZ_CASES`` (and the seed through ``RETRACE_FUZZ_SEED``).
"""

from __future__ import annotations

import contextlib
import os
import random
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retracesoftware import stream
from retracesoftware.stream import _stream

CASES = int(os.environ.get("RETRACE_FUZZ_CASES", "30000"))
SEED = int(os.environ.get("RETRACE_FUZZ_SEED", "20261122"))


class Point:
    def __init__(self, x: int, y: int) -> None:
        if not isinstance(x, int) or not isinstance(y, int):
            raise TypeError("Point needs ints")
        self.x, self.y = x, y


REG = stream.TypeRegistry()
REG.register(Point, lambda p: (p.x, p.y), lambda s: Point(*s), name="fuzz.Point")


def sample_events(rnd: random.Random) -> list[Any]:
    shared: list[Any] = [1, "shared"]
    cyc: list[Any] = []
    cyc.append((cyc, 2))
    pool: list[Any] = [
        None,
        True,
        False,
        0,
        -1,
        95,
        96,
        -33,
        2**70,
        -(2**200),
        1.5,
        float("nan"),
        -0.0,
        1_700_000_000.25,
        3 + 4j,
        "",
        "alpha",
        "\ud800",
        "é" * 30,
        "x" * 300,
        b"",
        b"\x00\xff",
        bytearray(b"ba"),
        (),
        (1, "alpha"),
        tuple(range(20)),
        [shared, shared],
        {"k": shared},
        {1, 2, "s"},
        frozenset({(1, 2)}),
        cyc,
        Point(3, 4),
        [Point(1, 2)] * 2,
    ]
    return [rnd.choice(pool) for _ in range(rnd.randrange(1, 25))]


def build_corpus(tmp: Path) -> list[bytes]:
    rnd = random.Random(SEED)
    corpus = []
    for i in range(8):
        path = tmp / f"c{i}.retrace"
        with stream.Writer(path, types=REG, frame_size=rnd.choice([64, 256, 65536])) as w:
            objs = [bytearray(b"o") for _ in range(3)]
            for k, ev in enumerate(sample_events(rnd)):
                if k % 5 == 1:
                    w.bind(objs[k % 3])
                    w.write([objs[k % 3], ev], thread=k % 3)
                    w.unbind(objs[k % 3])
                else:
                    w.write(ev, thread=rnd.randrange(3))
                if rnd.random() < 0.3:
                    w.flush()
        corpus.append(path.read_bytes())
    return corpus


def frames(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each frame payload of a well-formed recording (per docs/format.md)."""
    out = []
    off = 12
    while off + 13 <= len(data):
        (n,) = struct.unpack_from("<I", data, off + 1)
        out.append((off, n))
        off += 13 + n
    return out


def reseal(data: bytearray) -> None:
    """Recompute every frame checksum so damage reaches the structural decoder."""
    off = 12
    while off + 13 <= len(data):
        (n,) = struct.unpack_from("<I", data, off + 1)
        if off + 13 + n > len(data):
            return
        crc = _stream.crc32c(
            bytes(data[off + 13 : off + 13 + n]), _stream.crc32c(bytes(data[off : off + 5]))
        )
        struct.pack_into("<I", data, off + 5, crc)
        struct.pack_into("<I", data, off + 9, _stream.crc32c(bytes(data[off : off + 9])))
        off += 13 + n


INTERESTING = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x1D, 0x1E, 0x22, 0x23, 0x24, 0x25, 0x30, 0x31, 0x32]


def mutate(rnd: random.Random, corpus: list[bytes]) -> bytes:
    data = bytearray(rnd.choice(corpus))
    kind = rnd.randrange(8)
    if kind == 0:  # truncate
        del data[rnd.randrange(len(data)) :]
    elif kind == 1:  # splice two recordings
        other = rnd.choice(corpus)
        data = data[: rnd.randrange(len(data))] + other[rnd.randrange(len(other)) :]
    elif kind == 2:  # duplicate or drop a chunk
        a = rnd.randrange(len(data))
        b = min(len(data), a + rnd.randrange(1, 64))
        if rnd.random() < 0.5:
            data[a:a] = data[a:b]
        else:
            del data[a:b]
    elif kind == 3:  # random garbage inserted
        a = rnd.randrange(len(data))
        data[a:a] = rnd.randbytes(rnd.randrange(1, 16))
    else:  # byte damage inside a payload, with checksums recomputed (structural fuzzing)
        spans = [(o, n) for o, n in frames(bytes(data)) if n]
        for _ in range(rnd.randrange(1, 4)):
            if spans and kind != 7:
                o, n = rnd.choice(spans)
                i = o + 13 + rnd.randrange(n)
            else:
                i = rnd.randrange(len(data))
            data[i] = rnd.choice(INTERESTING) if rnd.random() < 0.5 else rnd.randrange(256)
        if kind != 7:
            reseal(data)
    return bytes(data)


def consume(data: bytes) -> str:
    """Read everything; return the outcome class (any non-StreamError escapes)."""
    try:
        with stream.Reader(data, types=REG, name="fuzzed.retrace") as r:
            for _ in r:
                pass
            r.position  # noqa: B018
    except stream.StreamError as exc:
        message = str(exc)
        # Every verdict names the file and where; corruption also says what was expected.
        assert message.startswith("fuzzed.retrace: ") and exc.path == "fuzzed.retrace", message
        assert exc.offset is not None and exc.offset <= len(data), message
        if isinstance(exc, stream.CorruptError):
            assert "expected" in message and str(exc.offset) in message, message
        if isinstance(exc, stream.TruncatedError):
            assert "interrupted" in message and str(exc.offset) in message, message
        return type(exc).__name__
    return "ok"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    return build_corpus(tmp_path_factory.mktemp("fuzz"))


def test_corpus_is_valid(corpus: list[bytes]) -> None:
    for data in corpus:
        assert consume(data) == "ok"


def test_fuzz_recordings(corpus: list[bytes]) -> None:
    rnd = random.Random(SEED)
    outcomes: dict[str, int] = {}
    for _ in range(CASES):
        data = mutate(rnd, corpus)
        result = consume(data)
        outcomes[result] = outcomes.get(result, 0) + 1
    # The mutators reach every kind of verdict, not just checksum failures.
    assert {"TruncatedError", "CorruptError"} <= outcomes.keys(), outcomes
    assert sum(outcomes.values()) == CASES


def test_fuzz_loads() -> None:
    rnd = random.Random(SEED + 1)
    seeds = [stream.dumps(sample_events(rnd), types=REG) for _ in range(20)]
    outcomes: dict[str, int] = {}
    for _ in range(CASES):
        data = bytearray(rnd.choice(seeds))
        op = rnd.randrange(4)
        if op == 0:
            del data[rnd.randrange(len(data)) :]
        elif op == 1:
            other = rnd.choice(seeds)
            data = data[: rnd.randrange(len(data))] + other[1 + rnd.randrange(len(other) - 1) :]
        else:
            for _ in range(rnd.randrange(1, 4)):
                i = rnd.randrange(1, len(data))
                data[i] = rnd.choice(INTERESTING) if rnd.random() < 0.5 else rnd.randrange(256)
        try:
            stream.loads(bytes(data), types=REG)
            key = "ok"
        except stream.StreamError as exc:
            key = type(exc).__name__
        outcomes[key] = outcomes.get(key, 0) + 1
    assert "CorruptError" in outcomes and sum(outcomes.values()) == CASES


@settings(max_examples=max(200, CASES // 20), deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data: bytes) -> None:
    for candidate in (data, _stream.MAGIC + data, b"\x01" + data):
        consume(candidate)
        with contextlib.suppress(stream.StreamError):
            stream.loads(candidate)


def test_lengths_cannot_force_allocation() -> None:
    """Huge declared sizes are refused from the bytes present, without allocating them."""
    head = bytearray(_stream.MAGIC + b"\x01\x00\x00\x00")
    for declared in (0xFFFFFFFF, 0x7FFFFFFF, 1 << 20):
        frame = bytearray(b"\x02" + struct.pack("<I", declared) + b"\x00" * 8)
        struct.pack_into("<I", frame, 9, _stream.crc32c(bytes(frame[:9])))
        data = bytes(head) + header_frame() + bytes(frame)
        assert consume(data) == "TruncatedError"
    # Counts far beyond the data: a list, dict, str and bytes claiming 2**60 items.
    for op in (0x1E, 0x1F, 0x18, 0x1B, 0x1D, 0x20):
        body = bytes([0x01, op]) + b"\x80" * 8 + b"\x10"
        with pytest.raises(stream.CorruptError):
            stream.loads(body)


def header_frame() -> bytes:
    path_free = stream.dumps(
        {
            "recording_id": "0" * 32,
            "created": 0.0,
            "argv": [],
            "cwd": "/",
            "python_implementation": "CPython",
            "python_version": "3",
            "platform": "x",
            "retrace_version": "0",
            "extra": {},
        }
    )[1:]
    return frame(0x01, path_free)


def frame(kind: int, payload: bytes) -> bytes:
    head = bytearray(bytes([kind]) + struct.pack("<I", len(payload)) + b"\x00" * 8)
    struct.pack_into("<I", head, 5, _stream.crc32c(payload, _stream.crc32c(bytes(head[:5]))))
    struct.pack_into("<I", head, 9, _stream.crc32c(bytes(head[:9])))
    return bytes(head) + payload


def test_hand_built_recording_follows_the_spec() -> None:
    """A recording assembled from docs/format.md alone is read back as specified."""
    events = bytes([0x80 + 32 + 7])  # small int 7
    events += bytes([0x30, 0x02]) + bytes([0x19, 0x02]) + b"hi"  # thread 2, interned "hi"
    events += bytes([0x30, 0x00, 0x1A, 0x00])  # thread 0, string reference 0
    trailer = struct.pack("<QQ", 3, 1) + b"RTRCEND\n"
    data = (
        _stream.MAGIC
        + b"\x01\x00\x00\x00"
        + header_frame()
        + frame(0x02, events)
        + frame(0x03, trailer)
    )
    with stream.Reader(data) as r:
        assert list(r.events()) == [(0, 7), (2, "hi"), (0, "hi")]
        assert r.finished
