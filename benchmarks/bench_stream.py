"""Benchmark retracesoftware.stream against pickle (protocol 5) and marshal.

A recording is a long sequence of small boundary events, each written as it happens, so every
codec encodes events one at a time: ``pickle.dumps(event, 5)`` / ``marshal.dumps(event)`` per
event versus ``Writer.write(event)`` into a real file (framing, checksums and I/O included).
Reading decodes each event again (``pickle.loads`` per event versus iterating a ``Reader``).
Bound objects are written through the bind system by stream; the baselines get the integer
handle instead (they have no notion of identity across events).

Prints throughput ratios (higher is better for stream), sizes, and ns per float event written.
"""

from __future__ import annotations

import gc
import marshal
import os
import pickle
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from retracesoftware import stream

N_EVENTS = 200_000
REPEATS = 5


class Resource:
    """Stand-in for an external object (socket, file) that the recorder binds."""


def make_events(n: int, seed: int = 1) -> tuple[list[Any], list[Any], list[Resource]]:
    """Return (events for stream, the same events with handles as ints, bound objects)."""
    rnd = random.Random(seed)
    names = ["read", "write", "recv", "send", "stat", "open", "close", "getaddrinfo"]
    paths = [f"/srv/app/data/file{i}.txt" for i in range(40)]
    resources = [Resource() for _ in range(64)]
    events: list[Any] = []
    plain: list[Any] = []
    now = 1_700_000_000.0
    for _ in range(n):
        r = rnd.random()
        if r < 0.30:  # time.time() results
            now += rnd.random() * 0.002
            ev = pev = now
        elif r < 0.50:  # small ints: return codes, sizes, fds
            ev = pev = rnd.choice([0, 1, -1, 3, 4096, rnd.randrange(1 << 16)])
        elif r < 0.62:  # short str, often repeated
            ev = pev = rnd.choice(names) if rnd.random() < 0.7 else rnd.choice(paths)
        elif r < 0.74:  # short bytes
            ev = pev = rnd.randbytes(rnd.randrange(1, 48))
        elif r < 0.90:  # small tuples mixing the above
            t = (rnd.choice(names), rnd.randrange(1 << 20), now, rnd.random() < 0.5)
            ev = pev = t
        elif r < 0.95:  # None / bool results
            ev = pev = rnd.choice([None, True, False])
        else:  # a bound object (e.g. a socket returned by a call)
            i = rnd.randrange(len(resources))
            ev = (resources[i], rnd.choice(names))
            pev = (i, ev[1])
        events.append(ev)
        plain.append(pev)
    return events, plain, resources


def best(fn: Callable[[], float | None]) -> float:
    """Best of REPEATS runs (GC paused): fn's own measurement if it returns one, else its time."""
    times = []
    for _ in range(REPEATS):
        gc.collect()
        gc.disable()
        t0 = time.perf_counter()
        inner = fn()
        elapsed = time.perf_counter() - t0
        gc.enable()
        times.append(inner if inner is not None else elapsed)
    return min(times)


def main() -> None:
    events, plain, resources = make_events(N_EVENTS)
    tmp = tempfile.mkdtemp(prefix="bench_stream_")
    path = os.path.join(tmp, "bench.retrace")

    def write_stream() -> None:
        with stream.Writer(path) as w:
            for r in resources:
                w.bind(r)
            write = w.write
            for ev in events:
                write(ev)

    def write_stream_loop() -> float:
        """Only the write loop: without open, header, trailer and fsync."""
        with stream.Writer(path) as w:
            for r in resources:
                w.bind(r)
            write = w.write
            t0 = time.perf_counter()
            for ev in events:
                write(ev)
            return time.perf_counter() - t0

    def write_pickle() -> None:
        dumps = pickle.dumps
        for ev in plain:
            dumps(ev, 5)

    def write_marshal() -> None:
        dumps = marshal.dumps
        for ev in plain:
            dumps(ev)

    t_stream_w = best(write_stream)
    t_stream_loop = best(write_stream_loop)
    t_pickle_w = best(write_pickle)
    t_marshal_w = best(write_marshal)
    pickled = [pickle.dumps(ev, 5) for ev in plain]
    marshalled = [marshal.dumps(ev) for ev in plain]

    def count_stream() -> int:
        with stream.Reader(path) as r:
            return sum(1 for _ in r)

    def read_stream() -> None:
        with stream.Reader(path) as r:
            for _ in r:
                pass

    def read_pickle() -> None:
        loads = pickle.loads
        for b in pickled:
            loads(b)

    def read_marshal() -> None:
        loads = marshal.loads
        for b in marshalled:
            loads(b)

    assert count_stream() == N_EVENTS
    t_stream_r = best(read_stream)
    t_pickle_r = best(read_pickle)
    t_marshal_r = best(read_marshal)

    size_stream = os.path.getsize(path)
    size_pickle = sum(map(len, pickled))
    size_marshal = sum(map(len, marshalled))

    # Float events alone: ns per write of a time.time()-like value.
    floats = [1_700_000_000.0 + i * 0.000731 for i in range(N_EVENTS)]

    def write_floats() -> float:
        with stream.Writer(path) as w:
            write = w.write
            t0 = time.perf_counter()
            for f in floats:
                write(f)
            return time.perf_counter() - t0

    def pickle_floats() -> None:
        dumps = pickle.dumps
        for f in floats:
            dumps(f, 5)

    t_floats = best(write_floats)
    float_bytes = os.path.getsize(path)
    t_pickle_floats = best(pickle_floats)

    os.remove(path)
    os.rmdir(tmp)

    n = N_EVENTS
    print(f"bench_stream: {n} mixed boundary events, best of {REPEATS}")
    print(
        f"  write: stream {t_stream_w / n * 1e9:7.1f} ns/event (whole file: open, header, "
        f"trailer, fsync), {t_stream_loop / n * 1e9:7.1f} (write loop only) | "
        f"pickle.dumps {t_pickle_w / n * 1e9:7.1f} | marshal.dumps {t_marshal_w / n * 1e9:7.1f}"
    )
    print(
        f"  write throughput vs pickle: {t_pickle_w / t_stream_loop:5.2f}x (target >= 1.5x; "
        f"{t_pickle_w / t_stream_w:5.2f}x counting open+close+fsync); "
        f"vs marshal: {t_marshal_w / t_stream_loop:5.2f}x"
    )
    print(
        f"  read:  stream {t_stream_r / n * 1e9:7.1f} ns/event | "
        f"pickle.loads {t_pickle_r / n * 1e9:7.1f} | marshal.loads {t_marshal_r / n * 1e9:7.1f}"
    )
    print(
        f"  read throughput vs pickle: {t_pickle_r / t_stream_r:5.2f}x (target >= 1.0x); "
        f"vs marshal: {t_marshal_r / t_stream_r:5.2f}x"
    )
    print(
        f"  size: stream {size_stream} B (whole file) | pickle {size_pickle} B | "
        f"marshal {size_marshal} B -> stream/pickle {size_stream / size_pickle:4.2f} "
        f"(target <= 1.0)"
    )
    print(
        f"  float events: {t_floats / n * 1e9:6.1f} ns/event written (write loop) "
        f"(pickle.dumps {t_pickle_floats / n * 1e9:6.1f} ns), "
        f"{float_bytes / n:4.2f} bytes/event in the file"
    )
    per_event = [len(stream.dumps(f)) - 1 for f in floats[:1000]]
    print(f"  float encoding: median {statistics.median(per_event)} bytes (standalone, no delta)")


if __name__ == "__main__":
    main()
