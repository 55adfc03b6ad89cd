"""Reference counting and leaks of the native extension."""

from __future__ import annotations

import contextlib
import gc
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from retracesoftware import stream


class Thing:
    def __init__(self, v: Any) -> None:
        self.v = v


def encode_thing(t: Thing) -> Any:
    return t.v


REG = stream.TypeRegistry()
REG.register(Thing, encode_thing, Thing)


def sample() -> Any:
    shared = [1.5, "repeated"]
    cyc: list[Any] = []
    cyc.append((cyc,))
    return [
        shared,
        shared,
        {"k": shared, 2**80: b"bytes"},
        {1, 2},
        frozenset({"a"}),
        1 + 2j,
        bytearray(b"ba"),
        "\ud800",
        -(2**90),
        Thing([Thing(1)]),
        cyc,
        None,
        True,
    ]


def workload(tmp: Path) -> None:
    value = sample()
    data = stream.dumps(value, types=REG)
    stream.loads(data, types=REG)
    for bad in (data[:-3], data[:1] + b"\x7f" + data[2:], b"\x01\x1f\x01\x1e\x00\x00"):
        with contextlib.suppress(stream.StreamError):
            stream.loads(bad, types=REG)
    with contextlib.suppress(stream.UnsupportedTypeError):
        stream.dumps([value, object()], types=REG)
    path = tmp / "leak.retrace"
    obj = bytearray(b"bound")
    with stream.Writer(path, types=REG, frame_size=256) as w:
        w.bind(obj)
        for i in range(20):
            w.write(value)
            w.write((obj, f"str{i}"), thread=i % 2)
            with contextlib.suppress(stream.UnsupportedTypeError):
                w.write([f"new{i}", object()])
        w.unbind(obj)
    with stream.Reader(path, types=REG) as r:
        list(r.events())
    raw = path.read_bytes()
    for cut in (len(raw) // 2, len(raw) - 5):
        try:
            with stream.Reader(raw[:cut], types=REG) as r:
                list(r)
        except stream.StreamError:
            pass
    bad = bytearray(raw)
    bad[len(raw) // 2] ^= 1
    try:
        with stream.Reader(bytes(bad), types=REG) as r:
            list(r)
    except stream.StreamError:
        pass


def growth(fn: Callable[[], None], rounds: int) -> int:
    fn()
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(rounds):
            fn()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before


def test_no_python_object_leaks(tmp_path: Path) -> None:
    grown = growth(lambda: workload(tmp_path), 60)
    assert grown < 64 * 1024, f"{grown} bytes of Python objects leaked over 60 rounds"


def test_refcounts_restored(tmp_path: Path) -> None:
    value = sample()
    singletons = (None, True, False)
    items = [value, *(x for x in value if x not in singletons), encode_thing, Thing]
    items += [REG._encoders, REG._decoders]
    obj = bytearray(b"o")
    before = [sys.getrefcount(x) for x in items]
    obj_before = sys.getrefcount(obj)
    for _ in range(50):
        stream.loads(stream.dumps(value, types=REG), types=REG)
    w = stream.Writer(tmp_path / "rc.retrace", types=REG)
    w.bind(obj)
    assert sys.getrefcount(obj) == obj_before + 1  # the writer keeps bound objects alive
    for _ in range(50):
        w.write(value)
        w.write(obj)
    w.unbind(obj)
    assert sys.getrefcount(obj) == obj_before
    w.close()
    del w
    r = stream.Reader(tmp_path / "rc.retrace", types=REG)
    list(r)
    r.close()
    del r
    gc.collect()
    assert [sys.getrefcount(x) for x in items] == before


def test_bound_objects_released_by_close_and_gc(tmp_path: Path) -> None:
    obj = bytearray(b"o")
    base = sys.getrefcount(obj)
    w = stream.Writer(tmp_path / "g.retrace")
    w.bind(obj)
    w.write(obj)
    w.close()
    del w
    gc.collect()
    assert sys.getrefcount(obj) == base


def test_writer_dealloc_without_close_finishes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "d.retrace"
    w = stream.Writer(path)
    w.write("kept")
    del w
    gc.collect()
    with stream.Reader(path) as r:
        assert list(r) == ["kept"] and r.finished


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_native_memory_is_released(tmp_path: Path) -> None:
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    payload = "x" * 1000

    def cycle() -> None:
        for _ in range(50):
            with stream.Writer(tmp_path / "m.retrace", frame_size=1 << 20) as w:
                for i in range(200):
                    w.write((payload, i))
            with stream.Reader(tmp_path / "m.retrace") as r:
                for _ in r:
                    pass

    cycle()
    start = rss()
    for _ in range(6):
        cycle()
    # 300 writers each with a >= 1 MiB native buffer: leaking any of them shows up clearly.
    assert rss() - start < 48 * 1024 * 1024


def test_cycles_through_hooks_and_handles_are_collected(tmp_path: Path) -> None:
    import weakref

    class Owner:
        pass

    reg = stream.TypeRegistry()
    reg.register(Owner, lambda o: 0, lambda s: s)
    path = tmp_path / "cyc.retrace"
    w = stream.Writer(path, types=reg)
    Owner.writer = w  # type: ignore[attr-defined]  # type -> writer -> registry/type -> ...
    bound = Owner()
    bound.writer = w  # type: ignore[attr-defined]
    w.bind(bound)
    w.write(Owner())
    w.flush()
    ref = weakref.ref(w)
    del w, bound, Owner, reg
    gc.collect()
    assert ref() is None
    with stream.Reader(path, types=stream.TypeRegistry()) as r:
        assert r.header is not None
