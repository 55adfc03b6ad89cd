"""Tiny timing harness shared by the benchmarks.

The machine is noisy, so a candidate and its baseline are timed in alternation
(A, B, A, B, ...) and each keeps its best run: a burst of load then hits both
sides instead of skewing the ratio. The cost of the empty timing loop is
subtracted from both.
"""

from __future__ import annotations

import time
from collections.abc import Callable

REPEATS = 9
NUMBER = 200_000

Thunk = Callable[[], object]


def _make_loop(thunk: Thunk) -> Callable[[int], None]:
    def loop(n: int) -> None:
        for _ in range(n):
            thunk()

    return loop


def _nothing() -> None:
    return None


def paired(candidate: Thunk, baseline: Thunk, number: int = NUMBER) -> tuple[float, float]:
    """Return the ns per call of *candidate* and of *baseline*, measured interleaved."""
    loops = [_make_loop(candidate), _make_loop(baseline), _make_loop(_nothing)]
    best = [float("inf")] * 3
    for _ in range(REPEATS):
        for i, loop in enumerate(loops):
            start = time.perf_counter_ns()
            loop(number)
            best[i] = min(best[i], time.perf_counter_ns() - start)
    empty = best[2]
    return (max(best[0] - empty, 0.0) / number, max(best[1] - empty, 0.0) / number)


def report(title: str, rows: list[tuple[str, float, float, str]]) -> None:
    """Print ``name  value  baseline  ratio  target`` rows under *title*."""
    print(f"\n== {title}")
    print(f"{'case':<40}{'ns':>9}{'baseline ns':>13}{'ratio':>9}  target")
    for name, value, baseline, target in rows:
        ratio = value / baseline if baseline else float("inf")
        print(f"{name:<40}{value:>9.1f}{baseline:>13.1f}{ratio:>8.2f}x  {target}")
