"""Fixtures of the runtime tests."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

DRIVER = Path(__file__).resolve().parents[2] / "tools" / "cpython_runtime.py"


def _driver():
    """tools/cpython_runtime.py, loaded once (it knows what a current build is)."""
    module = sys.modules.get("cpython_runtime")
    if module is None:
        spec = importlib.util.spec_from_file_location("cpython_runtime", DRIVER)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["cpython_runtime"] = module
        spec.loader.exec_module(module)
    return module


STALE: list[str] = []  # cached builds passed over because other inputs made them


def find_patched_python() -> str | None:
    """A built patched interpreter: $RETRACE_PATCHED_PYTHON or the newest current cached build.

    A cached build made from other patches or overlay files than this checkout's is stale:
    it is passed over (and named in the skip reason), never tested.
    """
    explicit = os.environ.get("RETRACE_PATCHED_PYTHON")
    if explicit:
        return explicit
    cache = Path(os.environ.get("RETRACE_CPYTHON_CACHE") or Path.home() / ".cache/retrace-cpython")
    for build in sorted((cache / "build").glob("3.*-retrace"), reverse=True):
        exe = build / "src" / "python"
        if not exe.is_file():
            continue
        if _driver().build_is_current(build):
            return str(exe)
        if str(build) not in STALE:
            STALE.append(str(build))
    return None


@pytest.fixture
def patched_python() -> str:
    """Path of a patched interpreter; skips the test when none is built."""
    python = find_patched_python()
    if python is None:
        stale = f" (stale, made from other patches or overlay: {', '.join(STALE)})" if STALE else ""
        pytest.skip(f"no current patched CPython built{stale}: nox -s build-runtime-3.13")
    return python
