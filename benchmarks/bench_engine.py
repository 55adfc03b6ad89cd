"""Cost of the record/replay engine.

Prints, against baselines measured in the same run:

* ns added to one patched boundary call (``time.time``) in record mode with ``MemoryWriter``
  and in replay mode with ``MemoryReader``, above the plain ``time.time`` call;
* ns added to the patched call on a thread outside the sandbox;
* the slow path: a patched method of a patched C type (``_random.Random.random``) on record
  and on replay;
* the time ratio of a pure-Python loop that never crosses the boundary, run while the System
  is installed and recording, against the same loop with nothing installed.

Each figure is the minimum over interleaved rounds (the machine may be shared and noisy).
Targets (issue 5): <= 250 ns per boundary call in either mode, <= 1.02x for code that never
crosses.  Run: ``python benchmarks/bench_engine.py``.
"""

from __future__ import annotations

import _random
import time
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

    with System() as system:
        crossing = system.patch_function(time, "time")
        system.patch_type(_random.Random, ["random"])
        patched_random = rng.random

        # Record: every round alternates the plain call and the patched call.
        def record_rounds() -> None:
            for _ in range(ROUNDS):
                keep("plain", per_call(real_time))
                keep("record", per_call(crossing))
                keep("plain random", per_call(real_random, CALLS // 10))
                keep("record random", per_call(patched_random, CALLS // 10))

        writer = MemoryWriter()
        system.record(writer, record_rounds)

        # Replay the same program: the recording answers the patched calls.
        def replay_rounds() -> None:
            for _ in range(ROUNDS):
                keep("plain", per_call(real_time))
                keep("replay", per_call(crossing))
                keep("plain random", per_call(real_random, CALLS // 10))
                keep("replay random", per_call(patched_random, CALLS // 10))

        system.replay(writer.reader(), replay_rounds)

        for _ in range(ROUNDS):
            keep("outside", per_call(crossing))
            keep("plain", per_call(real_time))
            keep("loop plain", timed_loop())
            system.record(MemoryWriter(), lambda: keep("loop installed", timed_loop()))

    plain = best["plain"]
    print(f"plain time.time():                          {plain:7.1f} ns/call")
    print(f"patched, thread outside the sandbox:        {best['outside'] - plain:+7.1f} ns/call")
    print(
        f"record, MemoryWriter (native fast path):    {best['record'] - plain:+7.1f} ns/call"
        "   target <= +250"
    )
    print(
        f"replay, MemoryReader (native fast path):    {best['replay'] - plain:+7.1f} ns/call"
        "   target <= +250"
    )
    print(
        f"record, patched C-type method (slow path):  "
        f"{best['record random'] - best['plain random']:+7.1f} ns/call"
    )
    print(
        f"replay, patched C-type method (slow path):  "
        f"{best['replay random'] - best['plain random']:+7.1f} ns/call"
    )
    ratio = best["loop installed"] / best["loop plain"]
    print(f"pure-Python loop while recording:           {ratio:7.3f}x      target <= 1.02x")


if __name__ == "__main__":
    main()
