"""Patched vs vanilla CPython: CPU workloads and startup, as ratios.

    python benchmarks/bench_runtime.py --patched P --vanilla V [--rounds 7] [--callgrind]

Both interpreters should be built from the same tarball with the same flags
(``nox -s bench-runtime-3.13`` does that).  Each workload runs in a fresh
process, alternating interpreters; the best of ``--rounds`` (each the best of
three runs in the process) is compared.  ``--callgrind`` adds instruction
counts under ``valgrind --tool=callgrind`` (smaller sizes, one run each): they
do not depend on the machine's load.  When both interpreters come from the
build driver, the CPU time of their builds from scratch is compared too.
Without arguments (``nox -s bench``) it looks for the cached 3.13 builds and
skips when they are absent.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKLOADS = {
    "fib(27)": """
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
fib(27)
""",
    "dict/str loop": """
d = {}
for i in range(300_000):
    k = "k" + str(i % 5000)
    d[k] = d.get(k, 0) + len(k)
s = "".join(sorted(d)[:1000])
""",
    "method-call loop": """
class Counter:
    def __init__(self):
        self.n = 0
    def add(self, k):
        self.n += k
        return self
c = Counter()
for i in range(1_000_000):
    c.add(1)
""",
    "generator pipeline": """
def source(n):
    for i in range(n):
        yield i
def evens(xs):
    for x in xs:
        if x % 2 == 0:
            yield x
def scaled(xs):
    for x in xs:
        yield x * 3
total = sum(scaled(evens(source(1_000_000))))
""",
}

HARNESS = """
import time
_code = compile({code!r}, "<bench>", "exec")
_wall = _cpu = float("inf")
for _ in range(3):
    _t, _c = time.perf_counter(), time.process_time()
    exec(_code, {{}})
    _wall = min(_wall, time.perf_counter() - _t)
    _cpu = min(_cpu, time.process_time() - _c)
print(_wall, _cpu)
"""

# Callgrind sizes: the same workloads, scaled down (valgrind runs ~50x slower).
CALLGRIND_SCALE = {
    "fib(27)": ("fib(27)", "fib(22)"),
    "dict/str loop": ("300_000", "40_000"),
    "method-call loop": ("1_000_000", "100_000"),
    "generator pipeline": ("1_000_000", "100_000"),
}


def run_workload(python: str, code: str) -> tuple[float, float]:
    """(wall, CPU) seconds of *code* in a fresh *python*, each the best of three runs."""
    out = subprocess.run(
        [python, "-c", HARNESS.format(code=code)], capture_output=True, text=True, check=True
    ).stdout
    wall, cpu = out.split()
    return float(wall), float(cpu)


def startup(python: str) -> tuple[float, float]:
    """(wall, CPU) seconds of ``python -c pass``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # microsecond resolution
    start = time.perf_counter()
    subprocess.run([python, "-c", "pass"], check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def instructions(python: str, code: str, tmp: Path) -> int:
    """Instructions executed by *python* running *code* (callgrind's total)."""
    script = tmp / "workload.py"
    script.write_text(code)
    out = tmp / "callgrind.out"
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", python, str(script)],
        capture_output=True,
        text=True,
        check=True,
        # A fixed string-hash seed: dict probe counts (hence instructions) depend on it.
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    match = re.search(r"refs:\s*([\d,]+)", proc.stderr)
    if match is None:
        raise RuntimeError(f"no instruction count in callgrind's output:\n{proc.stderr}")
    return int(match.group(1).replace(",", ""))


def callgrind_ratios(patched: str, vanilla: str) -> dict[str, tuple[int, int]]:
    """Instruction counts (vanilla, patched) per workload, startup included."""
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, code in WORKLOADS.items():
            big, small = CALLGRIND_SCALE[name]
            scaled = code.replace(big, small)
            counts[name] = (
                instructions(vanilla, scaled, Path(tmp)),
                instructions(patched, scaled, Path(tmp)),
            )
        counts["startup"] = (
            instructions(vanilla, "pass", Path(tmp)),
            instructions(patched, "pass", Path(tmp)),
        )
    return counts


def build_cpu_seconds(python: str) -> float | None:
    """CPU seconds of the driver's last build from scratch of *python*, if recorded."""
    record = Path(python).resolve().parent.parent / "full-build.json"
    try:
        return float(json.loads(record.read_text())["cpu_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def default_pythons() -> tuple[str, str] | None:
    cache = Path(os.environ.get("RETRACE_CPYTHON_CACHE") or Path.home() / ".cache/retrace-cpython")
    builds = sorted((cache / "build").glob("3.13.*-retrace"))
    for patched in reversed(builds):
        vanilla = patched.with_name(patched.name.replace("-retrace", "-vanilla"))
        if (patched / "src/python").is_file() and (vanilla / "src/python").is_file():
            return str(patched / "src/python"), str(vanilla / "src/python")
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patched")
    parser.add_argument("--vanilla")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--callgrind", action="store_true", help="also count instructions")
    args = parser.parse_args()
    if not (args.patched and args.vanilla):
        found = default_pythons()
        if found is None:
            print(
                "bench_runtime: no cached patched/vanilla 3.13 builds; "
                "run `nox -s bench-runtime-3.13`"
            )
            return 0
        args.patched, args.vanilla = found
    inf = (float("inf"), float("inf"))
    results: dict[str, dict[str, tuple[float, float]]] = {}
    for name, code in WORKLOADS.items():
        best = {"patched": inf, "vanilla": inf}
        for _ in range(args.rounds):
            for which in ("vanilla", "patched"):
                got = run_workload(getattr(args, which), code)
                best[which] = (min(best[which][0], got[0]), min(best[which][1], got[1]))
        results[name] = best
    best = {"patched": inf, "vanilla": inf}
    for _ in range(args.rounds * 3):
        for which in ("vanilla", "patched"):
            got = startup(getattr(args, which))
            best[which] = (min(best[which][0], got[0]), min(best[which][1], got[1]))
    results["startup"] = best
    print(
        f"{'workload':<20} {'vanilla s':>10} {'patched s':>10} {'wall':>7}"
        f" {'vanilla cpu':>12} {'patched cpu':>12} {'cpu':>7}"
    )
    for name, best in results.items():
        (vw, vc), (pw, pc) = best["vanilla"], best["patched"]
        cpu_ratio = pc / vc if vc > 0 else float("nan")
        print(
            f"{name:<20} {vw:>10.4f} {pw:>10.4f} {pw / vw:>6.3f}x"
            f" {vc:>12.4f} {pc:>12.4f} {cpu_ratio:>6.3f}x"
        )
    ratios = {k: v["patched"][0] / v["vanilla"][0] for k, v in results.items()}
    summary: dict[str, object] = {"wall": ratios}
    if args.callgrind:
        if shutil.which("valgrind") is None:
            print("callgrind: valgrind is not installed")
        else:
            counts = callgrind_ratios(args.patched, args.vanilla)
            print(f"\n{'workload':<20} {'vanilla Ir':>13} {'patched Ir':>13} {'ratio':>7}")
            for name, (van, pat) in counts.items():
                print(f"{name:<20} {van:>13,} {pat:>13,} {pat / van:>6.3f}x")
            summary["instructions"] = {k: p / v for k, (v, p) in counts.items()}
    built = build_cpu_seconds(args.patched), build_cpu_seconds(args.vanilla)
    if None not in built:
        pat, van = built
        print(
            f"\nbuild from scratch (CPU s): vanilla {van:.1f}, patched {pat:.1f}, "
            f"ratio {pat / van:.3f}x"
        )
        summary["build_cpu"] = pat / van
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
