"""Cost of recording and replaying whole programs with ``retrace record`` / ``retrace replay``.

Every figure is measured on real processes (``python -m retracesoftware ...`` against plain
``python``), the minimum over interleaved rounds, in the same run:

(a) ~1 s of pure-Python CPU work that never crosses the boundary: record/plain and replay/plain
    wall time, with and without the fixed start-up cost;
(b) 200,000 ``time.time()`` calls plus 20,000 small file reads: record/plain and replay/plain
    (start-up cost subtracted);
(c) the fixed start-up cost of record and of replay: an empty program, minus plain ``python``
    (also in instructions, when ``valgrind`` is installed: repeatable on a loaded machine);
(d) recording bytes per ``time.time()`` event.

Targets (issue 6): (a) <= 1.03x, (b) record <= 3x and replay <= 2x, (c) <= 0.1 s each.
Run: ``python benchmarks/bench_record.py`` (``--quick`` for one small round).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CPU = """
def work(n):
    total = 0
    for i in range(n):
        total = (total * 31 + i) % 1000003
    return total
print(work({n}))
"""
CLOCK_AND_FILES = """
import time
for _ in range({calls}):
    time.time()
for i in range({reads}):
    with open("small.txt") as fh:
        fh.read()
print("done")
"""
EMPTY = "pass\n"


def _run(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


# The first ``retrace`` process, up to the point where it re-executes itself (for the hash seed).
FIRST_PROCESS = """
import os, runpy, sys
os.execve = lambda *args: os._exit(0)
sys.argv = ["retracesoftware", *sys.argv[1:]]
runpy.run_module("retracesoftware", run_name="__main__", alter_sys=True)
"""


def retrace_instructions(args: list[str], cwd: Path) -> int:
    """Instructions of ``python -m retracesoftware *args``: the first process up to its
    re-execution plus the re-executed process (which keeps the pid, so it is counted apart)."""
    py = sys.executable
    first = instructions([py, "-c", FIRST_PROCESS, *args], cwd, fixed_seed=False)
    return first + instructions([py, "-m", "retracesoftware", *args], cwd)


def instructions(args: list[str], cwd: Path, *, fixed_seed: bool = True) -> int:
    """Instructions (valgrind callgrind) of one run of *args*; with *fixed_seed*, the hash seed
    is set so that ``retrace`` does not re-execute itself."""
    env = dict(os.environ)
    if fixed_seed:
        env.update(PYTHONHASHSEED="0", _RETRACE_HASHSEED_SET="1")
    out = cwd / "callgrind.out"
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *args],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
    )
    summary = [line for line in out.read_text().splitlines() if line.startswith("summary:")]
    out.unlink()
    return int(summary[0].split()[1])


def measure(source: str, cwd: Path, rounds: int, name: str) -> tuple[float, float, float]:
    """Best wall time of plain, record and replay runs of *source*."""
    script = cwd / f"{name}.py"
    script.write_text(source, encoding="utf-8")
    rec = cwd / f"{name}.retrace"
    py = sys.executable
    plain = record = replay = float("inf")
    for _ in range(rounds):
        plain = min(plain, _run([py, str(script)], cwd))
        record = min(
            record,
            _run([py, "-m", "retracesoftware", "record", "-o", str(rec), "--", str(script)], cwd),
        )
        replay = min(replay, _run([py, "-m", "retracesoftware", "replay", str(rec)], cwd))
    return plain, record, replay


def main() -> None:
    quick = "--quick" in sys.argv
    rounds = 1 if quick else 3
    scale = 0.1 if quick else 1.0
    with tempfile.TemporaryDirectory(prefix="bench-record-") as tmp:
        cwd = Path(tmp)
        (cwd / "small.txt").write_text("x" * 100, encoding="utf-8")

        e_plain, e_rec, e_rep = measure(EMPTY, cwd, rounds * 2, "empty")
        start_rec, start_rep = e_rec - e_plain, e_rep - e_plain
        print(
            f"(c) start-up cost: record {start_rec:.3f} s, replay {start_rep:.3f} s "
            f"(plain python {e_plain:.3f} s; target <= 0.1 s each)"
        )
        if shutil.which("valgrind") is not None:
            py, rec = sys.executable, str(cwd / "empty.retrace")
            plain_i = instructions([py, "empty.py"], cwd)
            rec_i = retrace_instructions(["record", "-o", rec, "--", "empty.py"], cwd)
            rep_i = retrace_instructions(["replay", rec], cwd)
            print(
                f"(c) start-up in instructions (both processes): record "
                f"+{(rec_i - plain_i) / 1e6:.0f}M, replay +{(rep_i - plain_i) / 1e6:.0f}M "
                f"(plain python {plain_i / 1e6:.0f}M)"
            )

        n = int(15_000_000 * scale)  # about 1 s of plain Python here
        plain, rec, rep = measure(CPU.format(n=n), cwd, rounds, "cpu")
        print(
            f"(a) pure-Python CPU work ({plain:.2f} s plain): record/plain {rec / plain:.3f}x, "
            f"replay/plain {rep / plain:.3f}x; start-up subtracted: record/plain "
            f"{(rec - start_rec) / plain:.3f}x, replay/plain {(rep - start_rep) / plain:.3f}x "
            f"(target <= 1.03x)"
        )

        calls, reads = int(200_000 * scale), int(20_000 * scale)
        source = CLOCK_AND_FILES.format(calls=calls, reads=reads)
        plain, rec, rep = measure(source, cwd, rounds, "clock")
        base = e_plain
        work_plain = max(plain - base, 1e-6)
        print(
            f"(b) {calls} time.time() + {reads} file reads ({work_plain:.2f} s plain, start-up "
            f"subtracted): record/plain {(rec - e_rec) / work_plain:.2f}x (target <= 3x), "
            f"replay/plain {(rep - e_rep) / work_plain:.2f}x (target <= 2x)"
        )

        clocks = cwd / "clocks.py"
        few, many = 1_000, int(200_000 * scale)
        sizes = []
        for count in (few, many):
            clocks.write_text(f"import time\nfor _ in range({count}): time.time()\n")
            out = cwd / f"clocks{count}.retrace"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "retracesoftware",
                    "record",
                    "-o",
                    str(out),
                    "--",
                    str(clocks),
                ],
                cwd=cwd,
                check=True,
                capture_output=True,
            )
            sizes.append(os.path.getsize(out))
        per_event = (sizes[1] - sizes[0]) / (many - few)
        print(
            f"(d) recording size: {per_event:.1f} bytes per time.time() call (CALL + RESULT events)"
        )


if __name__ == "__main__":
    main()
