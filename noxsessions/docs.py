"""Documentation sessions: the MkDocs site, the CLI reference and llms.txt.

nox -s docs         # regenerate docs/cli.md, build the site strictly, refresh llms*.txt
nox -s docs-serve   # live preview on http://127.0.0.1:8000
"""

from __future__ import annotations

import nox

from noxsessions.common import PRESENT_PYTHONS, install_package

DOCS_REQUIREMENTS = ("mkdocs>=1.6,<2", "mkdocs-material>=9.5,<10")
# mkdocs-material prints a multi-line notice about its successor on every build.
MKDOCS_ENV = {"NO_MKDOCS_2_WARNING": "1"}


def _prepare(session: nox.Session) -> None:
    """Install Retrace (the CLI page is generated from it) and the docs toolchain."""
    install_package(session)
    session.install(*DOCS_REQUIREMENTS)
    session.run("python", "tools/cli_reference.py", "--write")


@nox.session(python=PRESENT_PYTHONS[:1] or False)
def docs(session: nox.Session) -> None:
    """Build the documentation site in strict mode and regenerate llms.txt/llms-full.txt."""
    _prepare(session)
    session.run("mkdocs", "build", "--strict", "--clean", env=MKDOCS_ENV)
    session.run("python", "tools/llms_txt.py")
    session.log("site in build/site/; llms.txt and llms-full.txt refreshed at the root")


@nox.session(name="docs-serve", python=PRESENT_PYTHONS[:1] or False, default=False)
def docs_serve(session: nox.Session) -> None:
    """Serve the documentation with live reload (pass mkdocs serve options after --)."""
    _prepare(session)
    session.run("mkdocs", "serve", "--strict", *session.posargs, env=MKDOCS_ENV)
