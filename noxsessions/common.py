"""Helpers shared by every nox session module."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent.parent
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")
BUILD_REQUIREMENTS = ("meson-python>=0.17", "meson>=1.4", "ninja")


def _pyenv_bin_dirs() -> list[str]:
    """Return the ``bin`` directories of pyenv-managed interpreters, if any."""
    pyenv = shutil.which("pyenv")
    if not pyenv:
        return []
    try:
        out = subprocess.run(
            [pyenv, "versions", "--bare"], capture_output=True, text=True, check=True
        ).stdout
        prefix = subprocess.run(
            [pyenv, "root"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return []
    dirs = []
    for version in sorted(out.split(), reverse=True):
        bin_dir = Path(prefix, "versions", version, "bin")
        if bin_dir.is_dir():
            dirs.append(str(bin_dir))
    return dirs


def _expose_pyenv_interpreters() -> None:
    """Put real pyenv interpreters ahead of its shims so nox finds ``pythonX.Y``."""
    extra = [d for d in _pyenv_bin_dirs() if d not in os.environ.get("PATH", "")]
    if extra:
        os.environ["PATH"] = os.pathsep.join([*extra, os.environ.get("PATH", "")])


_expose_pyenv_interpreters()


def interpreter_path(version: str) -> str | None:
    """Return a working ``pythonX.Y`` for *version*, or ``None`` when absent."""
    candidate = shutil.which(f"python{version}")
    if candidate is None:
        return None
    try:
        subprocess.run([candidate, "-c", "pass"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return candidate


PRESENT_PYTHONS = [v for v in SUPPORTED_PYTHONS if interpreter_path(v)]
MISSING_PYTHONS = [v for v in SUPPORTED_PYTHONS if v not in PRESENT_PYTHONS]


def install_package(session: nox.Session, *extras: str) -> None:
    """Build and install Retrace from this checkout into the session's venv."""
    session.install(*BUILD_REQUIREMENTS)
    target = "." if not extras else f".[{','.join(extras)}]"
    session.install("--no-build-isolation", target)
