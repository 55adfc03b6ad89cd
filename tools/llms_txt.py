"""Generate ``llms.txt`` and ``llms-full.txt`` from the MkDocs sources.

``llms.txt`` is an index of the documentation (title, summary, one line per
page in navigation order); ``llms-full.txt`` is the whole documentation as one
plain-text file, for tools and coding agents that read a package without
browsing a website.  Both are derived from ``mkdocs.yml`` and ``docs/``:

    python tools/llms_txt.py                       # write both at the repository root
    python tools/llms_txt.py --check               # exit 1 if the committed files are stale
    python tools/llms_txt.py --out-dir DIR         # write them into DIR (e.g. a wheel's package)

Only the standard library is used, so the staleness test runs everywhere.  The
``nav`` of ``mkdocs.yml`` is read with a small parser that accepts exactly the
form used there (``- Title: page.md`` and ``- Section:`` with nested items) and
rejects anything else with a clear message.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUTS = ("llms.txt", "llms-full.txt")

_ITEM = re.compile(r"^(?P<indent> *)- (?P<title>[^:]+?):(?: +(?P<file>\S+\.md))?\s*$")
_KEY = re.compile(r"^(?P<key>[A-Za-z_]+): *(?P<value>.*?)\s*$")
_COMMENT = re.compile(r"<!--.*?-->\s*", re.DOTALL)


class NavError(ValueError):
    """``mkdocs.yml`` has a nav entry this generator does not understand."""


@dataclass(frozen=True)
class Page:
    """One documentation page in navigation order."""

    section: str  # "" for top-level pages
    title: str
    path: str  # relative to docs/


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def read_config(config: Path) -> tuple[dict[str, str], list[Page]]:
    """Return the top-level scalar settings and the nav pages of *config*."""
    settings: dict[str, str] = {}
    pages: list[Page] = []
    in_nav = False
    sections: list[tuple[int, str]] = []  # (indent, title) of open sections
    for lineno, raw in enumerate(config.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        if not line.startswith(" ") and not line.startswith("-"):
            in_nav = line.rstrip() == "nav:"
            match = _KEY.match(line)
            if match and match["value"] and not in_nav:
                settings[match["key"]] = _unquote(match["value"])
            continue
        if not in_nav:
            continue
        match = _ITEM.match(line)
        if match is None:
            raise NavError(
                f"{config.name}:{lineno}: nav entries must be '- Title: page.md' or "
                f"'- Section:'; got {raw.strip()!r}"
            )
        indent = len(match["indent"])
        while sections and sections[-1][0] >= indent:
            sections.pop()
        title = _unquote(match["title"].strip())
        if match["file"] is None:
            sections.append((indent, title))
        else:
            section = " / ".join(t for _, t in sections)
            pages.append(Page(section, title, match["file"]))
    if not pages:
        raise NavError(f"{config.name}: no 'nav:' pages found")
    return settings, pages


def _body(text: str) -> str:
    """Return page text without HTML comments and surrounding blank lines."""
    return _COMMENT.sub("", text).strip() + "\n"


def summary(text: str) -> str:
    """Return the first sentence of the first prose paragraph of a page."""
    paragraph: list[str] = []
    in_fence = False
    for line in _body(text).splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if not stripped:
            if paragraph:
                break
            continue
        if stripped.startswith(("#", "|", "!!!", "-", "*", ">", "<")) and not paragraph:
            continue
        paragraph.append(stripped)
    text = " ".join(paragraph)
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return (match[1] if match else text).strip()


def page_link(settings: dict[str, str], page: Page) -> str:
    """Return the address of *page*: the site URL when configured, else the source path."""
    site = settings.get("site_url", "").rstrip("/")
    if not site:
        return f"docs/{page.path}"
    stem = page.path[: -len(".md")]
    if stem == "index":
        return f"{site}/"
    if stem.endswith("/index"):
        stem = stem[: -len("/index")]
    return f"{site}/{stem}/"


def render(root: Path = ROOT) -> dict[str, str]:
    """Return ``{"llms.txt": ..., "llms-full.txt": ...}`` for the project at *root*."""
    settings, pages = read_config(root / "mkdocs.yml")
    docs = root / settings.get("docs_dir", "docs")
    texts = {}
    for page in pages:
        source = docs / page.path
        if not source.is_file():
            raise NavError(f"mkdocs.yml: nav page {page.path!r} does not exist in {docs.name}/")
        texts[page.path] = source.read_text(encoding="utf-8")
    name = settings.get("site_name", "Documentation")
    description = settings.get("site_description", "")
    head = [f"# {name}", ""]
    if description:
        head += [f"> {description}", ""]
    index = [
        *head,
        "The whole documentation as one text file: llms-full.txt.",
        "",
    ]
    current = None
    for page in pages:
        section = page.section or "Documentation"
        if section != current:
            index += ["", f"## {section}", ""] if current is not None else [f"## {section}", ""]
            current = section
        line = f"- [{page.title}]({page_link(settings, page)})"
        blurb = summary(texts[page.path])
        index.append(f"{line}: {blurb}" if blurb else line)
    full = [*head, "This file holds every page of the documentation, in navigation order.", ""]
    for page in pages:
        full += [
            "",
            "-" * 80,
            f"Page: {page.section + ' / ' if page.section else ''}{page.title}",
            f"Source: docs/{page.path}",
            "-" * 80,
            "",
            _body(texts[page.path]).rstrip(),
        ]
    return {"llms.txt": "\n".join(index) + "\n", "llms-full.txt": "\n".join(full) + "\n"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate llms.txt and llms-full.txt.")
    ap.add_argument("--check", action="store_true", help="fail if the committed files are stale")
    ap.add_argument("--out-dir", type=Path, default=ROOT, help="where to write (default: root)")
    args = ap.parse_args(argv)
    try:
        outputs = render(ROOT)
    except (NavError, OSError) as exc:
        print(f"llms_txt: {exc}", file=sys.stderr)
        return 2
    stale = []
    for name, text in outputs.items():
        target = args.out_dir / name
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(name)
        else:
            args.out_dir.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            print(f"llms_txt: wrote {target}")
    if stale:
        print(f"llms_txt: stale: {', '.join(stale)}; run `nox -s docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
