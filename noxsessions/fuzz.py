"""``nox -s fuzz``: a long fuzzing run of the recording reader (retracesoftware.stream).

``nox -s fuzz`` runs 1,000,000 cases of each fuzz test; ``nox -s fuzz -- 5000000 1234`` sets
the number of cases and the random seed.
"""

from __future__ import annotations

import nox

from noxsessions.common import PRESENT_PYTHONS, install_package


@nox.session(python=PRESENT_PYTHONS[:1] or False)
def fuzz(session: nox.Session) -> None:
    """Mutate, truncate and splice recordings: every outcome is a value or a StreamError."""
    install_package(session, "test")
    cases = session.posargs[0] if session.posargs else "1000000"
    seed = session.posargs[1] if len(session.posargs) > 1 else "20261122"
    session.run(
        "pytest",
        "tests/stream/test_fuzz.py",
        "-q",
        "-p",
        "no:cacheprovider",
        env={"RETRACE_FUZZ_CASES": cases, "RETRACE_FUZZ_SEED": seed},
    )
