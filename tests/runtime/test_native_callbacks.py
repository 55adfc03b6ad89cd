"""The native capsule API's scheduling callbacks, from a C extension (smoke script)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SMOKE = Path(__file__).resolve().parents[2] / "smoke"


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_native_callbacks_count_and_order(patched_python):
    env = {**os.environ, "PYTHONPATH": str(SMOKE)}
    env.pop("RETRACE_ROOT_SEED", None)
    proc = subprocess.run(
        [patched_python, str(SMOKE / "native_callbacks.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "ok"
