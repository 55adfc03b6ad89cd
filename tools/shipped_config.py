"""Write ``retracesoftware/install/_shipped_config.py``: the shipped patch configuration, read.

Meson runs this at build time over ``src/retracesoftware/install/modules/*.toml``.  The module
maps each file name to the file's bytes and what ``tomllib`` reads from it; ``load_config``
uses the table of a shipped file whose bytes are unchanged instead of parsing it (importing
``tomllib`` and parsing the files would be about a tenth of every ``retrace record`` and
``retrace replay`` start-up).  Nothing is generated in the source tree: run from a checkout,
``load_config`` parses the files.

    python tools/shipped_config.py OUTPUT FILE.toml...
"""

from __future__ import annotations

import os
import sys
import tomllib


def _plain(value: object) -> bool:
    """True when ``repr(value)`` reads back as *value* (what the schema allows)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return isinstance(value, (str, bool, int))


def render(paths: list[str]) -> str:
    """The module's source for the configuration files *paths*."""
    lines = [
        '"""The shipped patch configuration files and what ``tomllib`` reads from them',
        '(generated at build time by tools/shipped_config.py)."""',
        "",
        "FILES = {",
    ]
    for path in sorted(paths, key=os.path.basename):
        with open(path, "rb") as fh:
            data = fh.read()
        try:
            table = tomllib.loads(data.decode())
        except (UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue  # load_config reports it
        if not _plain(table):
            continue  # parsed at run time
        lines.append(f"    {os.path.basename(path)!r}: ({data!r}, {table!r}),")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) < 1:
        print("usage: shipped_config.py OUTPUT FILE.toml...", file=sys.stderr)
        return 2
    output, paths = argv[0], argv[1:]
    with open(output, "w", encoding="utf-8") as fh:
        fh.write(render(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
