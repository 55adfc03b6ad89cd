"""``retrace`` and ``python -m retracesoftware`` are the same program."""

from __future__ import annotations

import shutil
import subprocess
import sys

import retracesoftware


def test_module_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "retracesoftware", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert out.stdout.strip() == f"retrace {retracesoftware.__version__}"


def test_console_script_matches_module() -> None:
    script = shutil.which("retrace", path=str(__import__("pathlib").Path(sys.executable).parent))
    assert script is not None, "the retrace console script is not installed"
    a = subprocess.run([script, "--help"], capture_output=True, text=True)
    b = subprocess.run(
        [sys.executable, "-m", "retracesoftware", "--help"], capture_output=True, text=True
    )
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout


def test_unknown_option_is_a_clear_error() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "retracesoftware", "--bogus"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "unrecognized arguments: --bogus" in out.stderr
    assert "Traceback" not in out.stderr
