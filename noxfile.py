"""Nox sessions for Retrace.

Everyday sessions live here; the sessions of larger concerns (the patched
CPython runtime, documentation, release) live in ``noxsessions/`` and are
registered by importing those modules below.

    nox -s tests     # the test-suite on every Python 3.11-3.13 that is present
    nox -s lint      # ruff
    nox -s bench     # benchmarks, printed as ratios against in-run baselines
    nox -l           # everything else
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).resolve().parent))

import noxsessions.demo  # registers nox -s demo
import noxsessions.fuzz  # noqa: F401  (registers nox -s fuzz)
from noxsessions import docs, release, runtime  # noqa: F401  (docs, wheels, release, runtime)
from noxsessions.common import (
    MISSING_PYTHONS,
    PRESENT_PYTHONS,
    install_package,
)

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

if MISSING_PYTHONS:
    print(
        f"nox: Python {', '.join(MISSING_PYTHONS)} not found on this machine; "
        "their sessions are skipped",
        file=sys.stderr,
    )


@nox.session(python=PRESENT_PYTHONS or False)
def tests(session: nox.Session) -> None:
    """Install Retrace into a fresh venv and run the test-suite."""
    install_package(session, "test")
    session.run("pytest", *session.posargs)


@nox.session(python=PRESENT_PYTHONS[:1] or False)
def lint(session: nox.Session) -> None:
    """Check style and common bugs with ruff; check the GitHub workflows with actionlint."""
    session.install("ruff", *release.WORKFLOW_LINT_REQUIREMENTS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    release.lint_workflows(session)


@nox.session(python=PRESENT_PYTHONS[:1] or False)
def bench(session: nox.Session) -> None:
    """Run every benchmark in benchmarks/ and print ratios against baselines."""
    install_package(session)
    scripts = sorted(Path("benchmarks").glob("bench_*.py"))
    if session.posargs:
        scripts = [s for s in scripts if any(arg in s.name for arg in session.posargs)]
    for script in scripts:
        session.run("python", str(script))
