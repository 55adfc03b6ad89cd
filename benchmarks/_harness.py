"""Tiny timing harness shared by the benchmarks: best-of-N ns per call."""

from __future__ import annotations

import time
from collections.abc import Callable

REPEATS = 7


def ns_per_call(thunk: Callable[[], object], number: int = 200_000) -> float:
    """Best (minimum) time of one call of *thunk* over ``REPEATS`` runs, in ns."""
    loop = _make_loop(thunk)
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter_ns()
        loop(number)
        best = min(best, time.perf_counter_ns() - start)
    empty = _make_loop(_nothing)
    base = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter_ns()
        empty(number)
        base = min(base, time.perf_counter_ns() - start)
    return max(best - base, 0.0) / number


def _nothing() -> None:
    return None


def _make_loop(thunk: Callable[[], object]) -> Callable[[int], None]:
    def loop(n: int) -> None:
        for _ in range(n):
            thunk()

    return loop


def report(title: str, rows: list[tuple[str, float, float, str]]) -> None:
    """Print ``name  value  baseline  ratio  target`` rows under *title*."""
    print(f"\n== {title}")
    print(f"{'case':<34}{'ns':>10}{'baseline ns':>13}{'ratio':>9}  target")
    for name, value, baseline, target in rows:
        ratio = value / baseline if baseline else float("inf")
        print(f"{name:<34}{value:>10.1f}{baseline:>13.1f}{ratio:>8.2f}x  {target}")
