"""Fixtures of the runtime tests."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "tools" / "cpython_runtime.py"
#: Set (CI does, in .ci/runtime.sh, after building the runtime): no current patched build, or a
#: Retrace that cannot be installed into it, fails the runtime tests instead of skipping them.
REQUIRE_ENV = "RETRACE_E2E_REQUIRE"
#: A patched interpreter's environment that already has Retrace installed (else one is made).
E2E_PYTHON_ENV = "RETRACE_E2E_PYTHON"
BUILD_REQUIREMENTS = ("meson-python>=0.17", "meson>=1.4", "ninja")


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
        _unavailable(f"no current patched CPython built{stale}: nox -s build-runtime-3.13")
    assert python is not None
    return python


def _required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def _unavailable(reason: str) -> None:
    if _required():
        pytest.fail(f"{reason} ({REQUIRE_ENV} is set)", pytrace=False)
    pytest.skip(reason)


def _cache_dir() -> Path:
    return Path(os.environ.get("RETRACE_CPYTHON_CACHE") or Path.home() / ".cache/retrace-cpython")


def _package_digest(python: str) -> str:
    """What an installed Retrace depends on: the interpreter's build and this checkout's package."""
    digest = hashlib.sha256(os.path.realpath(python).encode())
    stamp = Path(python).resolve().parent.parent / _driver().INPUTS_FILE
    digest.update(stamp.read_bytes() if stamp.is_file() else b"-")
    files = [ROOT / name for name in ("pyproject.toml", "meson.build", "VERSION")]
    files += sorted(
        p for p in (ROOT / "src").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_step(cmd: list[str], env: dict[str, str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip().splitlines()
        tail = "\n".join(line for line in output if "Location 'file:" not in line)[-4000:]
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")


def install_retrace(python: str, env_dir: Path) -> str:
    """A virtual environment of the patched *python* with Retrace built from this checkout.

    The package is compiled against the patched interpreter's own headers.  An uninstalled
    build tree's ``sysconfig`` points a venv at headers of its (absent) installation, so the
    interpreter's include directories are passed to the compiler explicitly.
    """
    shutil.rmtree(env_dir, ignore_errors=True)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("RETRACE_", "PYTHON"))}
    query = "import sysconfig as s; print(s.get_path('include')); print(s.get_path('platinclude'))"
    includes = subprocess.run(
        [python, "-c", query], capture_output=True, text=True, check=True, env=base_env
    ).stdout.split()
    _run_step([python, "-m", "venv", str(env_dir)], base_env, "creating the venv")
    bin_dir = env_dir / "bin"
    env = {
        **base_env,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "CPPFLAGS": " ".join(f"-I{d}" for d in dict.fromkeys(includes)),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "--quiet"]
    _run_step([*pip, *BUILD_REQUIREMENTS], env, "installing the build requirements")
    _run_step([*pip, "--no-build-isolation", str(ROOT)], env, "building and installing Retrace")
    return str(bin_dir / "python")


@pytest.fixture(scope="session")
def retrace_python() -> str:
    """A patched interpreter's environment with this checkout's Retrace installed.

    $RETRACE_E2E_PYTHON, or one made (once per build and package sources) in the cache next to
    the patched builds.  Skips without a current patched build or when Retrace cannot be
    installed; fails instead when $RETRACE_E2E_REQUIRE is set.
    """
    explicit = os.environ.get(E2E_PYTHON_ENV)
    if explicit:
        return explicit
    python = find_patched_python()
    if python is None:
        stale = f" (stale: {', '.join(STALE)})" if STALE else ""
        _unavailable(f"no current patched CPython built{stale}: nox -s build-runtime-3.13")
    assert python is not None
    root = _cache_dir() / "e2e"
    env_dir = root / f"venv-{_package_digest(python)}"
    done = env_dir / "retrace-installed"
    with _locked(root / "lock"):
        if not done.is_file():
            for old in root.glob("venv-*"):  # environments of older sources or builds
                shutil.rmtree(old, ignore_errors=True)
            try:
                install_retrace(python, env_dir)
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                _unavailable(f"cannot install Retrace into the patched CPython {python}: {exc}")
            done.write_text(python + "\n")
    return str(env_dir / "bin" / "python")
