"""RETRACE_FUNCTIONAL selects the backend; a missing extension falls back visibly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "import retracesoftware.functional as f; print(f.backend, f.backend_reason)"


def run(env_value: str | None, code: str = PROBE) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("RETRACE_FUNCTIONAL", None)
    if env_value is not None:
        env["RETRACE_FUNCTIONAL"] = env_value
    return subprocess.run(
        [sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, env=env
    )


def test_default_is_native() -> None:
    result = run(None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["native", "None"]


@pytest.mark.parametrize("value", ["native", "auto", "NATIVE", ""])
def test_native_choices(value: str) -> None:
    result = run(value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("native")


def test_pure_is_forced() -> None:
    result = run("pure")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pure RETRACE_FUNCTIONAL=pure"
    check = run("pure", "import retracesoftware.functional as f; print(f.compose.__module__)")
    assert check.stdout.strip() == "retracesoftware.functional"


def test_invalid_value_is_a_clear_error() -> None:
    result = run("fast")
    assert result.returncode != 0
    assert "RETRACE_FUNCTIONAL='fast' is not valid; use one of: auto, native, pure" in result.stderr


BLOCK_NATIVE = """
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name == "retracesoftware.functional._functional":
            raise ImportError("blocked for the test")
sys.meta_path.insert(0, Blocker())
"""


def test_fallback_when_native_is_missing_is_visible() -> None:
    result = run(None, BLOCK_NATIVE + PROBE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pure native extension unavailable: blocked for the test")
    assert "RuntimeWarning" in result.stderr and "pure-Python backend" in result.stderr


def test_native_required_but_missing_fails() -> None:
    result = run("native", BLOCK_NATIVE + PROBE)
    assert result.returncode != 0
    assert "RETRACE_FUNCTIONAL=native but the native extension cannot be loaded" in result.stderr
