"""Instruction counts per call (valgrind callgrind): ratios that load cannot disturb.

Wall-clock ratios on a busy machine swing by tens of percent; instruction
counts are repeatable. Run ``python benchmarks/count_instructions.py`` (needs
``valgrind``); each case runs ``CALLS`` calls in its own process, and the count
of an empty loop is subtracted.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys

CALLS = 100_000


def add(a, b, c=0):
    return a + b + c


def build_cases() -> dict[str, object]:
    from retracesoftware.functional import _functional as native
    from retracesoftware.functional import _pure as pure

    compose = native.compose(abs, abs, abs)
    nested = lambda x: abs(abs(abs(x)))  # noqa: E731
    partial, fpartial = native.partial(add, 1), functools.partial(add, 1)
    lru_native, lru_pure = native.memoize(abs, maxsize=128), pure.memoize(abs, maxsize=128)
    return {
        "empty": lambda: None,
        "compose(abs,abs,abs)": lambda: compose(-5),
        "nested lambda": lambda: nested(-5),
        "partial": lambda: partial(2),
        "functools.partial": lambda: fpartial(2),
        "memoize(maxsize=128) native": lambda: lru_native(-5),
        "memoize(maxsize=128) pure": lambda: lru_pure(-5),
    }


PAIRS = [
    ("compose(abs,abs,abs)", "nested lambda", "<= 0.8x"),
    ("partial", "functools.partial", "<= 1.2x"),
    ("memoize(maxsize=128) pure", "memoize(maxsize=128) native", ">= 2x"),
]


def count(case: str) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         __file__, "--run", case],
        capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    match = re.search(r"refs:\s+([\d,]+)", out)
    assert match, out
    return int(match.group(1).replace(",", ""))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--run":
        thunk = build_cases()[sys.argv[2]]
        for _ in range(CALLS):
            thunk()  # type: ignore[operator]
        return
    if shutil.which("valgrind") is None:
        sys.exit("count_instructions: valgrind is not installed (apt-get install valgrind)")
    empty = count("empty")
    per_call = {c: (count(c) - empty) / CALLS for c in build_cases() if c != "empty"}
    print(f"{'case':<32}{'instructions/call':>18}")
    for case, value in per_call.items():
        print(f"{case:<32}{value:>18.0f}")
    print()
    for a, b, target in PAIRS:
        print(f"{a} / {b}: {per_call[a] / per_call[b]:.2f}x  (target {target})")


if __name__ == "__main__":
    main()
