"""Fixtures of the runtime tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def find_patched_python() -> str | None:
    """A built patched interpreter: $RETRACE_PATCHED_PYTHON or the newest cached build."""
    explicit = os.environ.get("RETRACE_PATCHED_PYTHON")
    if explicit:
        return explicit
    cache = Path(os.environ.get("RETRACE_CPYTHON_CACHE") or Path.home() / ".cache/retrace-cpython")
    for build in sorted((cache / "build").glob("3.*-retrace"), reverse=True):
        exe = build / "src" / "python"
        if exe.is_file():
            return str(exe)
    return None


@pytest.fixture
def patched_python() -> str:
    """Path of a patched interpreter; skips the test when none is built."""
    python = find_patched_python()
    if python is None:
        pytest.skip("no patched CPython built (nox -s build-runtime-3.13)")
    return python
