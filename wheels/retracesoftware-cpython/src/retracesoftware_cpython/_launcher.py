"""Locate the packaged patched interpreter and bind it to the host Python.

The wheel carries only the patched executable plus ``retrace.py``; the
standard library comes from the host Python of the same minor version (the
one this package is installed for).  Binding writes ``_runtime/pyvenv.cfg``
so the executable finds that standard library, and a ``.pth`` file makes the
packages of the installing environment importable.
"""

from __future__ import annotations

import json
import os
import sys
from functools import cache
from pathlib import Path

RUNTIME = Path(__file__).resolve().parent / "_runtime"


class RuntimeMismatchError(RuntimeError):
    """The host Python cannot serve as the runtime's standard library."""


@cache
def runtime_info() -> dict:
    """Describe the embedded CPython (version, series, probe ABI)."""
    path = RUNTIME / "runtime.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RuntimeMismatchError(f"retracesoftware-cpython runtime is damaged: {exc}") from None


def _host_home() -> Path:
    base = getattr(sys, "_base_executable", None) or sys.executable
    return Path(base).resolve().parent


def _bind(home: Path) -> None:
    want = (
        f"home = {home}\n"
        "include-system-site-packages = false\n"
        f"version = {runtime_info()['cpython_version']}\n"
    )
    cfg = RUNTIME / "pyvenv.cfg"
    try:
        if cfg.is_file() and cfg.read_text() == want:
            return
        tmp = cfg.with_name(f"pyvenv.cfg.{os.getpid()}")
        tmp.write_text(want)
        tmp.replace(cfg)
    except OSError as exc:
        raise RuntimeMismatchError(f"cannot write {cfg}: {exc}") from None


def executable() -> str:
    """Return the path of the packaged patched Python executable.

    Raises ``RuntimeMismatchError`` when the running Python's minor version
    differs from the embedded CPython's: the runtime borrows its standard
    library from this Python.
    """
    info = runtime_info()
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    if info["series"] != host:
        raise RuntimeMismatchError(
            f"retracesoftware-cpython embeds CPython {info['cpython_version']} but is used from "
            f"Python {host} ({sys.executable}); install the wheel built for Python "
            f"{info['series']} into a Python {info['series']} environment"
        )
    exe = RUNTIME / info["executable"]
    if not exe.is_file():
        raise RuntimeMismatchError(f"the patched interpreter {exe} is missing")
    _bind(_host_home())
    return str(exe)


def main(argv: list[str] | None = None) -> int:
    """``retrace-python``: run the patched interpreter with the given arguments."""
    args = sys.argv[1:] if argv is None else argv
    try:
        exe = executable()
    except RuntimeMismatchError as exc:
        print(f"retrace-python: error: {exc}", file=sys.stderr)
        return 2
    os.execv(exe, [exe, *args])
    return 0  # not reached
