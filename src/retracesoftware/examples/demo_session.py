"""Record the demo, change the world, replay it, compare (what ``nox -s demo`` runs).

    python -m retracesoftware.examples.demo_session [WORKDIR]

Exit status 0 when the replayed run printed exactly what the recorded run printed and exited
with the same status; 1 otherwise.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def _retrace(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retracesoftware", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def run(workdir: Path) -> int:
    """Run the whole demonstration in *workdir*; return the exit status."""
    data = workdir / "data.txt"
    data.write_text("alpha\nbeta\ngamma\n", encoding="utf-8")
    recording = workdir / "demo.retrace"
    env = dict(os.environ, DEMO_GREETING="hello from the recorded run")

    print("== 1. record: retrace record -o demo.retrace -- -m retracesoftware.examples.demo")
    rec = _retrace(
        "record",
        "-o",
        str(recording),
        "--",
        "-m",
        "retracesoftware.examples.demo",
        str(data),
        env=env,
        cwd=workdir,
    )
    print(rec.stdout + rec.stderr, end="")
    print(f"(exit status {rec.returncode})\n")

    print(
        "== 2. change the world: new data file contents, different environment, time passes;"
        " the HTTP server the program started is gone"
    )
    data.write_text("the file was rewritten after recording\n", encoding="utf-8")
    env["DEMO_GREETING"] = "this value is not seen by the replay"
    plain = subprocess.run(
        [sys.executable, "-m", "retracesoftware.examples.demo", str(data)],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=120,
    )
    print("a plain run now prints:")
    print(plain.stdout + plain.stderr, end="")
    print()

    print("== 3. replay: retrace replay demo.retrace")
    rep = _retrace("replay", str(recording), env=env, cwd=workdir)
    print(rep.stdout + rep.stderr, end="")
    print(f"(exit status {rep.returncode})\n")

    print("== 4. inspect: retrace inspect demo.retrace")
    ins = _retrace("inspect", str(recording), env=env, cwd=workdir)
    print(ins.stdout + ins.stderr, end="")
    print()

    same = (rec.stdout, rec.stderr, rec.returncode) == (rep.stdout, rep.stderr, rep.returncode)
    if same and rec.returncode == 0:
        print("== the replayed run printed exactly what the recorded run printed: IDENTICAL")
        return 0
    print("== the runs DIFFER:")
    diff = difflib.unified_diff(
        (rec.stdout + rec.stderr).splitlines(),
        (rep.stdout + rep.stderr).splitlines(),
        "recorded",
        "replayed",
        lineterm="",
    )
    print("\n".join(diff))
    return 1


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        workdir = Path(argv[1])
        workdir.mkdir(parents=True, exist_ok=True)
        return run(workdir)
    with tempfile.TemporaryDirectory(prefix="retrace-demo-") as tmp:
        return run(Path(tmp))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
