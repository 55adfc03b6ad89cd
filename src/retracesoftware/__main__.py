"""The ``retrace`` command (also ``python -m retracesoftware``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``retrace`` command."""
    parser = argparse.ArgumentParser(
        prog="retrace",
        description="Deterministic record and replay for Python programs.",
    )
    parser.add_argument("--version", action="version", version=f"retrace {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
