"""Helpers shared by the smoke scripts (run inside the patched interpreter)."""

import os
import subprocess
import sys


def check(condition, message):
    """Fail the smoke script with *message* unless *condition* holds."""
    if not condition:
        print(f"SMOKE FAILURE: {message}", file=sys.stderr)
        sys.exit(1)


def run_child(code, env_overrides=None, timeout=60):
    """Run *code* in a fresh patched interpreter; return its stdout."""
    env = dict(os.environ)
    for key, value in (env_overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    check(proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout
