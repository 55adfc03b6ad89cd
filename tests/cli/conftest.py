"""Helpers for the CLI tests: run ``python -m retracesoftware`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def retrace(tmp_path: Path) -> Run:
    """``retrace(*args, env=None, cwd=tmp_path, input=None)`` -> CompletedProcess."""

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        full_env = dict(os.environ)
        full_env.pop("RETRACE_DEBUG", None)
        full_env.pop("RETRACE_CONFIG_PATH", None)
        if env:
            full_env.update(env)
        return subprocess.run(
            [sys.executable, "-m", "retracesoftware", *args],
            capture_output=True,
            text=True,
            env=full_env,
            cwd=cwd or tmp_path,
            input=input if input is not None else "",
            timeout=60,
        )

    return run


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
