"""Start-up stays lean: the command line does not import heavy standard library modules.

Importing ``dataclasses`` (with ``inspect``, ``ast``, ``dis``, ``tokenize``), ``importlib.abc``
(with ``importlib.resources``, ``tempfile``, ``shutil``), ``pathlib`` (with ``urllib.parse``,
``ipaddress``), ``json``, ``traceback``, ``tomllib`` or ``typing`` used to be a large part of
the fixed cost of every ``retrace record`` and ``retrace replay``.  (A recorded *script*
imports ``typing`` anyway: ``runpy.run_path`` imports ``pkgutil``, which does; ``-c`` code and
``-m`` modules do not.)
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retracesoftware import __main__ as main
from retracesoftware.install.config import _canonical_json

#: Never imported by the command line's modules.
HEAVY = (
    "dataclasses",
    "inspect",
    "ast",
    "dis",
    "tokenize",
    "importlib.abc",
    "importlib.resources",
    "tempfile",
    "shutil",
    "pathlib",
    "urllib.parse",
    "ipaddress",
    "json",
    "traceback",
    "textwrap",
    "tomllib",
    "typing",
    "argparse",  # only for command lines other than the usual record and replay
)
#: Never imported by a whole ``retrace record`` of an empty program (whatever the patch
#: configuration preloads may import the others).
HEAVY_RUN = (
    *("dataclasses", "inspect", "ast", "dis", "importlib.abc", "json", "shutil", "tomllib"),
    *("typing", "argparse", "gettext"),
)


def _loaded(code: str, *args: str, cwd: Path | None = None) -> set[str]:
    env = dict(os.environ)
    env.pop("RETRACE_CONFIG_PATH", None)
    out = subprocess.run(
        [sys.executable, *args] if args else [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=cwd,
        timeout=60,
    ).stdout
    return set(ast.literal_eval(out.strip().splitlines()[-1]))


def test_command_line_modules_import_nothing_heavy() -> None:
    loaded = _loaded(
        "import retracesoftware.cli, retracesoftware.install, retracesoftware.__main__, sys; "
        "print(sorted(sys.modules))"
    )
    assert "retracesoftware.install.session" in loaded  # the import did happen
    heavy = sorted(m for m in HEAVY if m in loaded)
    assert heavy == [], f"import {heavy} where used (or under TYPE_CHECKING), not at module level"


def test_recording_an_empty_program_imports_nothing_heavy(tmp_path: Path) -> None:
    show = "import sys; print(sorted(sys.modules))"
    loaded = _loaded(
        "", "-m", "retracesoftware", "record", "-o", "show.retrace", "--", "-c", show, cwd=tmp_path
    )
    assert "retracesoftware.install.session" in loaded
    heavy = sorted(m for m in HEAVY_RUN if m in loaded)
    assert heavy == [], f"recording an empty program imports {heavy}"


@pytest.mark.parametrize("columns", [None, "", "0", "x", "57"])
def test_help_width_is_shutils(columns: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert main._columns() == shutil.get_terminal_size().columns


def test_lazy_parser_builds_only_the_command_it_parses() -> None:
    parser = main.build_parser(lazy=True)
    args = parser.parse_args(["replay", "x.retrace"])
    assert args.file == "x.retrace"
    subparsers = next(a for a in parser._actions if a.choices and "replay" in a.choices)
    built = sorted(name for name, p in subparsers.choices.items() if p._real is not None)
    assert built == ["replay"]


@pytest.mark.parametrize(
    "argv",
    [[], ["--help"], ["record", "--help"], ["replay"], ["nope"], ["inspect", "--bad", "f"]],
)
def test_lazy_parser_prints_and_fails_like_the_full_one(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    results = []
    for lazy in (False, True):
        parser = main.build_parser(lazy=lazy)
        try:
            outcome: object = vars(parser.parse_args(argv))
        except SystemExit as exc:
            outcome = exc.code
        captured = capsys.readouterr()
        results.append((outcome, captured.out, captured.err, parser.format_help()))
    assert results[0] == results[1]


@pytest.mark.parametrize(
    "value",
    [
        {"b": [True, False, None], "a": {"z": "plain", "y": []}},
        ['quote"', "back\\slash", "tab\t", "del\x7f", "é", "\U0001f600", "\x00"],
        {"n": [1, -2, 3.5, float("inf")], "t": ("x", 1)},
        {"1": "a", "0": "b", "": ""},
    ],
)
def test_canonical_json_is_json_dumps(value: object) -> None:
    assert _canonical_json(value) == json.dumps(value, sort_keys=True, separators=(",", ":"))


_PLAIN = st.recursive(
    st.none() | st.booleans() | st.text() | st.integers(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(_PLAIN)
def test_canonical_json_matches_json_dumps_on_plain_data(value: object) -> None:
    assert _canonical_json(value) == json.dumps(value, sort_keys=True, separators=(",", ":"))


_TOKENS = ["record", "replay", "inspect", "-o", "--output", "--out", "--config", "-h", "--json"]
_TOKENS += ["x.retrace", "dir", "", "-", "-1", "a=b", "--output=f", "-of", "--recording"]


@given(st.lists(st.sampled_from(_TOKENS), max_size=7))
def test_quick_parse_is_argparses(head: list[str]) -> None:
    quick = main._quick_parse(head)
    if quick is None:
        return  # argparse parses it
    full = main.build_parser().parse_args(head)  # never exits for what _quick_parse accepts
    assert vars(quick) == vars(full)


def test_quick_parse_takes_the_usual_command_lines() -> None:
    record = main._quick_parse(["record", "-o", "x.retrace", "--config", "d"])
    assert record is not None and record.output == "x.retrace" and record.config == ["d"]
    replay = main._quick_parse(["replay", "x.retrace"])
    assert replay is not None and replay.file == "x.retrace"
