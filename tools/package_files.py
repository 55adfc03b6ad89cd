"""List the files of ``src/`` that belong in the installed package.

Meson calls this at configure time.  Everything under ``src/`` is package
content except native sources, build descriptions, templates and caches, so a
new module can never be forgotten by a hand-written file list.
"""

from __future__ import annotations

import sys
from pathlib import Path

NATIVE_SUFFIXES = {".c", ".cc", ".cpp", ".h", ".hh", ".hpp", ".in"}
SKIPPED_NAMES = {"meson.build", "meson.options"}
SKIPPED_DIRS = {"__pycache__"}


def package_files(root: Path) -> list[str]:
    """Return the package files below *root* as sorted POSIX-relative paths."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file() or SKIPPED_DIRS.intersection(path.relative_to(root).parts):
            continue
        if path.name in SKIPPED_NAMES or path.suffix in NATIVE_SUFFIXES:
            continue
        if path.suffix in {".pyc", ".so", ".pyd"}:
            continue
        found.append(path.relative_to(root).as_posix())
    return sorted(found)


if __name__ == "__main__":
    print("\n".join(package_files(Path(sys.argv[1]))))
