"""``nox -s demo``: record the bundled example, change the world, replay, compare."""

from __future__ import annotations

import nox

from .common import PRESENT_PYTHONS, install_package


@nox.session(python=PRESENT_PYTHONS[:1] or False)
def demo(session: nox.Session) -> None:
    """Record retracesoftware.examples.demo, change its inputs, replay it: identical output."""
    install_package(session)
    session.run("python", "-m", "retracesoftware.examples.demo_session", *session.posargs)
