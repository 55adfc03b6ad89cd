"""Start-up cost of the ``.pth`` hook (``retrace enable-hook``).

In a throwaway virtual environment (no pip; Retrace made importable by a path file) the start-up
of ``python -c pass`` is timed with the hook installed and without it, in interleaved rounds
(best of each), in the same run:

(a) hook installed, ``RETRACE_RECORDING`` unset, vs no hook: target "nothing measurable";
(b) ``RETRACE_RECORDING=FILE python -c pass`` (the hook re-executes under ``retrace record``)
    vs ``python -m retracesoftware record -o FILE -- -c pass``: the cost of going through the
    hook rather than the command.

Run: ``python benchmarks/bench_hook.py`` (``--quick`` for a few rounds).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import retracesoftware

PTH = "retracesoftware-hook.pth"
ADDPACKAGE = """
import os, site, sys, time
directory, name = sys.argv[1], sys.argv[2]
open(os.path.join(directory, "empty-probe.pth"), "w").close()
def best(name):
    times = []
    for _ in range(2000):
        start = time.perf_counter()
        site.addpackage(directory, name, set())
        times.append(time.perf_counter() - start)
    return min(times) * 1e6
before = set(sys.modules)
hook = best(name)
imported = len(set(sys.modules) - before)
print(f"{hook:.1f}", f"{best('empty-probe.pth'):.1f}", imported)
os.remove(os.path.join(directory, "empty-probe.pth"))
"""


def _time(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    quick = "--quick" in sys.argv
    rounds = 5 if quick else 40
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        venv = root / "v"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        py = str(venv / "bin" / "python")
        site = Path(
            subprocess.run(
                [py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        package_dir = Path(retracesoftware.__file__).resolve().parent.parent
        (site / "zz_retrace.pth").write_text(f"{package_dir}\n", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RETRACE", "PYTHON"))}
        subprocess.run(
            [py, "-m", "retracesoftware", "enable-hook"], check=True, env=env, capture_output=True
        )
        hook_text = (site / PTH).read_text(encoding="utf-8")
        rec_env = dict(env, RETRACE_RECORDING=str(root / "h.retrace"))
        command = [py, "-m", "retracesoftware", "record", "-o", str(root / "c.retrace")]

        plain = hooked = through_hook = through_command = float("inf")
        for _ in range(rounds):
            (site / PTH).unlink()
            plain = min(plain, _time([py, "-c", "pass"], root, env))
            (site / PTH).write_text(hook_text, encoding="utf-8")
            hooked = min(hooked, _time([py, "-c", "pass"], root, env))
        for _ in range(max(3, rounds // 8)):
            through_hook = min(through_hook, _time([py, "-c", "pass"], root, rec_env))
            through_command = min(through_command, _time([*command, "--", "-c", "pass"], root, env))
        # (c) processing the hook file alone, in-process: what site.py does at start-up
        per_file = subprocess.run(
            [py, "-c", ADDPACKAGE, str(site), PTH],
            check=True,
            env=env,
            capture_output=True,
            text=True,
        ).stdout.split()
        subprocess.run(
            [py, "-m", "retracesoftware", "disable-hook"], check=True, env=env, capture_output=True
        )

    print(f"== .pth hook start-up cost (best of {rounds} interleaved rounds)")
    print(f"{'case':<58}{'ms':>9}{'baseline ms':>13}{'ratio':>8}")
    rows = [
        ("(a) python -c pass, hook installed, variable unset", hooked, plain),
        ("(b) RETRACE_RECORDING=F python -c pass vs retrace record", through_hook, through_command),
    ]
    for name, value, base in rows:
        print(f"{name:<58}{value * 1e3:>9.2f}{base * 1e3:>13.2f}{value / base:>7.3f}x")
    print(f"(a) difference: {(hooked - plain) * 1e3:+.2f} ms per interpreter start")
    hook_us, empty_us, modules = per_file
    print(
        f"(c) site.addpackage() of the hook file: {hook_us} us (an empty .pth file: {empty_us} "
        f"us); modules imported by it: {modules}"
    )


if __name__ == "__main__":
    main()
