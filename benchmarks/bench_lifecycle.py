"""Cost of ordering thread synchronisation (the ``thread-sync`` adapter).

Real ``retrace record`` / ``retrace replay`` processes against plain ``python``, best of
interleaved rounds, in the same run.  Start-up cost (an empty program) is subtracted.

(a) one thread taking an uncontended ``threading.Lock`` 50,000 times;
(b) two threads taking one lock 20,000 times each (every acquisition is an ordered event);
(c) a ``ThreadPoolExecutor`` running 2,000 tiny jobs.

Run: ``python benchmarks/bench_lifecycle.py`` (``--quick`` for one small round).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

UNCONTENDED = """
import threading
lock = threading.Lock()
for _ in range({n}):
    with lock:
        pass
"""
CONTENDED = """
import threading
lock = threading.Lock()
count = [0]
def work():
    for _ in range({n}):
        with lock:
            count[0] += 1
ts = [threading.Thread(target=work) for _ in range(2)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(count[0])
"""
POOL = """
from concurrent.futures import ThreadPoolExecutor
with ThreadPoolExecutor(4) as ex:
    print(sum(ex.map(abs, range(-{n}, 0))))
"""
EMPTY = "pass\n"


def _run(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def measure(source: str, cwd: Path, rounds: int, name: str) -> tuple[float, float, float]:
    """Best wall time of plain, record and replay runs of *source*."""
    script = cwd / f"{name}.py"
    script.write_text(source, encoding="utf-8")
    rec = cwd / f"{name}.retrace"
    py = sys.executable
    best = [float("inf")] * 3
    for _ in range(rounds):
        best[0] = min(best[0], _run([py, str(script)], cwd))
        cmd = [py, "-m", "retracesoftware", "record", "-o", str(rec), "--", str(script)]
        best[1] = min(best[1], _run(cmd, cwd))
        best[2] = min(best[2], _run([py, "-m", "retracesoftware", "replay", str(rec)], cwd))
    return best[0], best[1], best[2]


def main() -> None:
    quick = "--quick" in sys.argv
    rounds = 1 if quick else 3
    scale = 10 if quick else 1
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        base = measure(EMPTY, cwd, rounds, "empty")
        cases = [
            ("(a) uncontended lock x50,000", UNCONTENDED.format(n=50_000 // scale), 50_000),
            ("(b) 2 threads x20,000 on one lock", CONTENDED.format(n=20_000 // scale), 40_000),
            ("(c) ThreadPoolExecutor, 2,000 jobs", POOL.format(n=2_000 // scale), 2_000),
        ]
        print(f"start-up: plain {base[0]:.3f} s, record {base[1]:.3f} s, replay {base[2]:.3f} s")
        for title, source, ops in cases:
            plain, record, replay = measure(source, cwd, rounds, "case")
            extra_rec = max(record - base[1], 0.0)
            extra_rep = max(replay - base[2], 0.0)
            work = max(plain - base[0], 1e-6)
            print(
                f"{title}: plain {work:.3f} s, record {extra_rec:.3f} s "
                f"({extra_rec / work:.1f}x), replay {extra_rep:.3f} s ({extra_rep / work:.1f}x); "
                f"record adds {1e6 * (extra_rec - work) / (ops // scale):.1f} us per operation"
            )


if __name__ == "__main__":
    main()
