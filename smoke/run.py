"""Run the smoke scripts inside a patched interpreter, each N times in a row.

python smoke/run.py --python /path/to/patched/python [--repeat 20] [name ...]
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "probe_capability",
    "coordinates_contract",
    "thread_delta_contract",
    "thread_ids",
    "scheduling_callbacks",
    "native_callbacks",
    "call_at",
    "handoff",
    "identity_hash",
    "leaks",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="the patched interpreter")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("names", nargs="*", help=f"subset of: {', '.join(SCRIPTS)}")
    args = parser.parse_args()
    names = args.names or list(SCRIPTS)
    unknown = sorted(set(names) - set(SCRIPTS))
    if unknown:
        parser.error(f"unknown smoke scripts: {', '.join(unknown)}")
    env = dict(os.environ)
    env.pop("RETRACE_ROOT_SEED", None)
    env["PYTHONPATH"] = str(HERE)
    failures = 0
    for name in names:
        start = time.monotonic()
        for run in range(1, args.repeat + 1):
            try:
                proc = subprocess.run(
                    [args.python, str(HERE / f"{name}.py")],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=args.timeout,
                )
                ok = proc.returncode == 0 and proc.stdout.strip().endswith("ok")
                detail = proc.stderr.strip() or proc.stdout.strip()
            except subprocess.TimeoutExpired:
                ok, detail = False, f"timed out after {args.timeout}s"
            if not ok:
                print(f"FAIL {name} (run {run}/{args.repeat}):\n{detail}")
                failures += 1
                break
        else:
            print(f"ok   {name}: {args.repeat} run(s) in {time.monotonic() - start:.1f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
