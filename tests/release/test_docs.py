"""The generated documentation (CLI reference, llms.txt) is complete and up to date."""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_tool(name: str) -> ModuleType:
    """Import ``tools/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"_tools_{name}", ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


cli_reference = load_tool("cli_reference")
llms_txt = load_tool("llms_txt")


def sample_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retrace", description="Top.")
    parser.add_argument("--version", action="version", version="x")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    record = sub.add_parser("record", help="record a run", aliases=["rec"], description="Rec.")
    record.add_argument("-o", "--output", metavar="FILE", default="run.retrace", help="out")
    record.add_argument("--mode", choices=["a", "b"], required=True, help="a|b")
    record.add_argument("--quiet", action="store_true", help="be quiet (default: %(default)s)")
    record.add_argument("--hidden", help=argparse.SUPPRESS)
    record.add_argument("program")
    record.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    inspect = sub.add_parser("inspect", help="summarise a recording")
    inspect.add_argument("files", nargs="+", metavar="FILE")
    inspect.add_argument("--json", action="store_true")
    return parser


# -- CLI reference --------------------------------------------------------------------------


def test_cli_reference_page_is_current() -> None:
    assert cli_reference.PAGE.read_text(encoding="utf-8") == cli_reference.build(), (
        "docs/cli.md is stale: run `nox -s docs` and commit it"
    )


def test_every_command_and_option_of_the_real_parser_is_documented() -> None:
    from retracesoftware.__main__ import build_parser

    page = cli_reference.PAGE.read_text(encoding="utf-8")
    assert cli_reference.undocumented(build_parser(), page) == []


def test_renders_subcommands_options_and_arguments() -> None:
    page = cli_reference.render(sample_parser())
    assert "## `retrace`" in page
    assert "### `retrace record`" in page and "### `retrace inspect`" in page
    assert "| `record` (alias: rec) | record a run |" in page
    assert "retrace record [-h] [-o FILE] --mode {a,b} [--quiet] program args ..." in page
    assert "`-o FILE`, `--output FILE`" in page and "`run.retrace`" in page
    assert "(required) a\\|b" in page  # table cells escape '|'
    assert "be quiet (default: False)" in page  # %(default)s expanded
    assert "`FILE [FILE ...]`" in page
    assert "--hidden" not in page
    assert cli_reference.undocumented(sample_parser(), page) == []


def test_detects_a_missing_option_command_or_argument() -> None:
    parser = sample_parser()
    page = cli_reference.render(parser)
    assert cli_reference.undocumented(parser, page.replace("`--json`", "`--jsn`")) == [
        "option '--json' of 'retrace inspect'"
    ]
    assert "command 'retrace inspect'" in cli_reference.undocumented(
        parser, page.replace("### `retrace inspect`", "### inspect")
    )
    assert "argument 'program' of 'retrace record'" in cli_reference.undocumented(
        parser, page.replace("`program`", "`prog`")
    )


def test_output_does_not_depend_on_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "20")
    narrow = cli_reference.render(sample_parser())
    monkeypatch.setenv("COLUMNS", "300")
    assert cli_reference.render(sample_parser()) == narrow


def test_check_mode_reports_a_stale_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "cli.md"
    monkeypatch.setattr(cli_reference, "PAGE", page)
    monkeypatch.setattr(cli_reference, "ROOT", tmp_path)
    page.write_text("old\n", encoding="utf-8")
    assert cli_reference.main(["--check"]) == 1
    assert "cli.md is stale" in capsys.readouterr().err
    assert cli_reference.main(["--write"]) == 0
    assert cli_reference.main(["--check"]) == 0


# -- llms.txt ---------------------------------------------------------------------------------


def test_llms_files_are_current() -> None:
    for name, text in llms_txt.render(ROOT).items():
        assert (ROOT / name).read_text(encoding="utf-8") == text, (
            f"{name} is stale: run `nox -s docs` and commit it"
        )


def test_every_docs_page_is_in_the_nav() -> None:
    _, pages = llms_txt.read_config(ROOT / "mkdocs.yml")
    in_nav = {page.path for page in pages}
    on_disk = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk - in_nav == set(), "add these pages to the nav of mkdocs.yml"
    assert len(in_nav) == len(pages), "a page is listed twice in the nav"


def write_site(root: Path, nav: str, pages: dict[str, str], extra: str = "") -> None:
    (root / "docs").mkdir()
    for name, text in pages.items():
        (root / "docs" / name).write_text(text, encoding="utf-8")
    (root / "mkdocs.yml").write_text(
        f"site_name: Demo  # comment\nsite_description: 'A demo.'\n{extra}"
        f"theme:\n  name: material\nnav:\n{nav}\nstrict: true\n",
        encoding="utf-8",
    )


def test_llms_index_and_full_text_follow_the_nav(tmp_path: Path) -> None:
    nav = (
        "  - Home: index.md\n"
        "  - Guide:\n"
        "      - Usage: usage.md\n"
        "      - Deep:\n"
        "          - Inner: inner.md\n"
        "  - Last: last.md\n"
    )
    write_site(
        tmp_path,
        nav,
        {
            "index.md": "# Home\n\n<!-- hidden -->\nFirst sentence here. Second one.\n",
            "usage.md": "# Usage\n\n```sh\ncode. here.\n```\n\n| a | b |\n\nUse it well!\n",
            "inner.md": "# Inner\n\nDeep page.\n",
            "last.md": "# Last\n",
        },
    )
    out = llms_txt.render(tmp_path)
    index, full = out["llms.txt"], out["llms-full.txt"]
    assert index.startswith("# Demo\n\n> A demo.\n")
    assert "- [Home](docs/index.md): First sentence here.\n" in index
    assert "## Guide\n\n- [Usage](docs/usage.md): Use it well!\n" in index
    assert "## Guide / Deep\n\n- [Inner](docs/inner.md): Deep page.\n" in index
    assert "- [Last](docs/last.md)\n" in index  # no prose: no blurb
    positions = [full.index(f"Source: docs/{p}") for p in ("index", "usage", "inner", "last")]
    assert positions == sorted(positions)
    assert "hidden" not in full
    assert "Page: Guide / Deep / Inner" in full


def test_llms_links_use_the_site_url_when_configured(tmp_path: Path) -> None:
    write_site(
        tmp_path,
        "  - Home: index.md\n  - Sub:\n      - Page: dir/page.md\n",
        {"index.md": "# Home\n"},
        extra="site_url: https://example.org/retrace/\n",
    )
    (tmp_path / "docs" / "dir").mkdir()
    (tmp_path / "docs" / "dir" / "page.md").write_text("# P\n", encoding="utf-8")
    index = llms_txt.render(tmp_path)["llms.txt"]
    assert "- [Home](https://example.org/retrace/)" in index
    assert "- [Page](https://example.org/retrace/dir/page/)" in index


@pytest.mark.parametrize(
    ("nav", "message"),
    [
        ("  - https://example.org\n", "mkdocs.yml:6: nav entries must be"),
        ("  - index.md\n", "mkdocs.yml:6: nav entries must be"),
        ("  - Gone: gone.md\n", "nav page 'gone.md' does not exist"),
    ],
)
def test_llms_rejects_navs_it_cannot_read(tmp_path: Path, nav: str, message: str) -> None:
    write_site(tmp_path, nav, {"index.md": "# Home\n"})
    with pytest.raises(llms_txt.NavError, match=message):
        llms_txt.render(tmp_path)


def test_llms_check_mode_and_out_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert llms_txt.main(["--out-dir", str(tmp_path)]) == 0
    for name in llms_txt.OUTPUTS:
        assert (tmp_path / name).read_text(encoding="utf-8") == (ROOT / name).read_text(
            encoding="utf-8"
        )
    (tmp_path / "llms.txt").write_text("old\n", encoding="utf-8")
    assert llms_txt.main(["--check", "--out-dir", str(tmp_path)]) == 1
    assert "stale: llms.txt" in capsys.readouterr().err


# -- troubleshooting -----------------------------------------------------------------------------

# Key phrase of every message the tools print, and the tool that prints it.
TOOL_MESSAGES = {
    "release_check": [
        "is not a canonical release version",
        "must hold exactly one line",
        "has no section for",
        "must read",
        "has no entries",
        "does not match VERSION",
        "is not a release tag",
        "sdist lacks",
        "contains build or cache files",
        "PKG-INFO declares version",
        "sdist is named",
        "is outside the",
        "is a link",
        "cannot be read",
        "cannot list the files tracked by git",
    ],
    "release_matrix": ["unknown series", "unknown platform"],
    "llms_txt": ["nav entries must be", "does not exist in", "stale: "],
    "cli_reference": ["is stale; run `nox -s docs`"],
}


@pytest.mark.parametrize("tool", sorted(TOOL_MESSAGES))
def test_every_tool_message_is_in_troubleshooting(tool: str) -> None:
    source = (ROOT / "tools" / f"{tool}.py").read_text(encoding="utf-8")
    page = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    for phrase in TOOL_MESSAGES[tool]:
        assert phrase in source, f"{phrase!r} is no longer printed by tools/{tool}.py"
        assert phrase in page, f"docs/troubleshooting.md does not explain {phrase!r}"
    raises = source.count("raise ReleaseError(") + source.count("raise MatrixError(")
    raises += source.count("raise NavError(")
    documented = {
        "release_check": 15,
        "release_matrix": 2,
        "llms_txt": 3,
        "cli_reference": 0,
    }
    assert raises == documented[tool], (
        f"tools/{tool}.py raises {raises} errors, {documented[tool]} are listed here: "
        "add the new message to TOOL_MESSAGES and docs/troubleshooting.md"
    )


# -- nox sessions ---------------------------------------------------------------------------------

_DECORATOR = re.compile(r"@nox\.session\((?P<args>[^)]*)\)\s*\ndef (?P<func>\w+)", re.MULTILINE)
_NAME = re.compile(r"""name=(?P<f>f?)(?P<q>["'])(?P<name>.+?)(?P=q)""")


def nox_sessions() -> list[str]:
    """Return the name patterns of every nox session (``{...}`` marks a parameter)."""
    names = []
    for path in [ROOT / "noxfile.py", *sorted((ROOT / "noxsessions").glob("*.py"))]:
        for match in _DECORATOR.finditer(path.read_text(encoding="utf-8")):
            named = _NAME.search(match["args"])
            names.append(named["name"] if named else match["func"].replace("_", "-"))
    return names


def test_every_nox_session_is_documented() -> None:
    pages = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").rglob("*.md"))
    sessions = nox_sessions()
    assert {"tests", "lint", "docs", "wheels", "release-check"} <= set(sessions)
    for session in sessions:
        parts = re.split(r"\{[^}]*\}", session)
        pattern = r"[\w.]+".join(re.escape(p) for p in parts)
        assert re.search(rf"`(nox -s )?{pattern}[`\s]", pages), (
            f"nox session {session!r} is not documented in docs/ (e.g. docs/developing.md)"
        )
