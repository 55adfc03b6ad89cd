"""Cost of the record/replay engine.

Prints, against baselines measured in the same run:

* ns added to one patched boundary call (``time.time``) in record mode with ``MemoryWriter``
  and in replay mode with ``MemoryReader``, above the plain ``time.time`` call;
* ns added to the patched call on a thread outside the sandbox;
* a method of a patched C type (``_random.Random.random``: the bound ``self`` stays on the
  native path) on record and on replay;
* plain data on the native path: a patched function taking a list and returning a tuple;
* the Python slow path: the same function called with a keyword argument;
* the time ratio of a pure-Python loop that never crosses the boundary, run while the System
  is installed and recording, against the same loop with nothing installed.

Each figure is the minimum over interleaved rounds (the machine may be shared and noisy).
Targets (issue 5): <= 250 ns per boundary call in either mode, <= 1.02x for code that never
crosses.  Run: ``python benchmarks/bench_engine.py``.
"""

from __future__ import annotations

import _random
import time
import types
from collections.abc import Callable

from retracesoftware.proxy import MemoryWriter, System

CALLS = 20_000  # calls per round
ROUNDS = 25
LOOP = 100_000  # iterations of the pure-Python loop per round
_ns = time.perf_counter_ns


def per_call(fn: Callable[[], object], n: int = CALLS) -> float:
    """ns per call of ``fn()`` over n calls."""
    t0 = _ns()
    for _ in range(n):
        fn()
    return (_ns() - t0) / n


def pure_python(n: int) -> int:
    """A loop that makes no boundary call."""
    total = 0
    for i in range(n):
        total += (i * 7) % 13
        if total > 1000:
            total -= 999
    return total


def external_pair(items: list) -> tuple:
    """A cheap 'external' function outside the native fast path (list in, tuple out)."""
    return (len(items), 0)


def timed_loop() -> float:
    t0 = _ns()
    pure_python(LOOP)
    return (_ns() - t0) / LOOP


def main() -> None:
    real_time = time.time
    rng = _random.Random(1)
    real_random = rng.random
    best: dict[str, float] = {}

    def keep(name: str, value: float) -> None:
        best[name] = min(best.get(name, float("inf")), value)

    for _ in range(ROUNDS):
        keep("loop plain", timed_loop())

    fake = types.ModuleType("fake_external")
    fake.pair = external_pair
    items = [1, 2, 3]

    def call_pair(fn: Callable[[list], tuple]) -> Callable[[], tuple]:
        return lambda: fn(items)

    def call_pair_kw(fn: Callable[..., tuple]) -> Callable[[], tuple]:
        return lambda: fn(items=items)

    with System() as system:
        crossing = system.patch_function(time, "time")
        system.patch_type(_random.Random, ["random"])
        patched_random = rng.random
        pair = system.patch_function(fake, "pair")
        plain_pair, native_pair = call_pair(external_pair), call_pair(pair)
        plain_kw, slow_kw = call_pair_kw(external_pair), call_pair_kw(pair)

        # Record: every round alternates the plain call and the patched call.
        def record_rounds() -> None:
            for _ in range(ROUNDS):
                keep("plain", per_call(real_time))
                keep("record", per_call(crossing))
                keep("plain random", per_call(real_random, CALLS // 10))
                keep("record random", per_call(patched_random, CALLS // 10))
                keep("plain pair", per_call(plain_pair, CALLS // 10))
                keep("record pair", per_call(native_pair, CALLS // 10))
                keep("plain kw", per_call(plain_kw, CALLS // 10))
                keep("record kw", per_call(slow_kw, CALLS // 10))

        writer = MemoryWriter()
        system.record(writer, record_rounds)

        # Replay the same program: the recording answers the patched calls.
        def replay_rounds() -> None:
            for _ in range(ROUNDS):
                keep("plain", per_call(real_time))
                keep("replay", per_call(crossing))
                keep("plain random", per_call(real_random, CALLS // 10))
                keep("replay random", per_call(patched_random, CALLS // 10))
                keep("plain pair", per_call(plain_pair, CALLS // 10))
                keep("replay pair", per_call(native_pair, CALLS // 10))
                keep("plain kw", per_call(plain_kw, CALLS // 10))
                keep("replay kw", per_call(slow_kw, CALLS // 10))

        system.replay(writer.reader(), replay_rounds)

        for _ in range(ROUNDS):
            keep("outside", per_call(crossing))
            keep("plain", per_call(real_time))
            keep("loop plain", timed_loop())
            system.record(MemoryWriter(), lambda: keep("loop installed", timed_loop()))

    plain = best["plain"]
    rows = [
        ("plain time.time()", f"{plain:7.1f} ns/call", ""),
        ("patched, thread outside the sandbox", f"{best['outside'] - plain:+7.1f} ns/call", ""),
        (
            "record, MemoryWriter (native path)",
            f"{best['record'] - plain:+7.1f} ns/call",
            "target <= +250",
        ),
        (
            "replay, MemoryReader (native path)",
            f"{best['replay'] - plain:+7.1f} ns/call",
            "target <= +250",
        ),
        (
            "record, patched C-type method",
            f"{best['record random'] - best['plain random']:+7.1f} ns/call",
            "",
        ),
        (
            "replay, patched C-type method",
            f"{best['replay random'] - best['plain random']:+7.1f} ns/call",
            "",
        ),
        (
            "record, plain data (list -> tuple)",
            f"{best['record pair'] - best['plain pair']:+7.1f} ns/call",
            "",
        ),
        (
            "replay, plain data (list -> tuple)",
            f"{best['replay pair'] - best['plain pair']:+7.1f} ns/call",
            "",
        ),
        (
            "record, Python slow path (keyword arg)",
            f"{best['record kw'] - best['plain kw']:+7.1f} ns/call",
            "",
        ),
        (
            "replay, Python slow path (keyword arg)",
            f"{best['replay kw'] - best['plain kw']:+7.1f} ns/call",
            "",
        ),
        (
            "pure-Python loop while recording",
            f"{best['loop installed'] / best['loop plain']:7.3f}x",
            "target <= 1.02x",
        ),
    ]
    for name, value, target in rows:
        print(f"{name + ':':<44}{value:<16}{target}")


if __name__ == "__main__":
    main()
