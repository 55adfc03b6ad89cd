"""Lower layers never import higher ones; ``proxy`` never imports ``stream``.

The rules come from the layer contract in the docs (internals): every module
of ``src/retracesoftware`` belongs to the layer named by its first package
component (top-level modules belong to the orchestration layer).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
TOP = "retracesoftware"

# layer -> layers it may import (itself included)
ALLOWED: dict[str, set[str]] = {
    "functional": {"functional"},
    "utils": {"functional", "utils"},
    "stream": {"functional", "utils", "stream"},
    "proxy": {"functional", "utils", "proxy"},
    "install": {"functional", "utils", "stream", "proxy", "install"},
    "examples": {"examples"},  # example programs: users' code, no Retrace internals
    TOP: {"functional", "utils", "stream", "proxy", "install", TOP},
}
# Modules any layer may import: the package root only re-exports the version.
NEUTRAL = {TOP, f"{TOP}._version"}
# Standalone packages shipped beside retracesoftware, and who may use them.
STANDALONE = {"reaktome": {"install", TOP}}


def layer_of(module: str, src: Path) -> str | None:
    """Layer of a dotted module name inside ``retracesoftware``, else None.

    Names imported from the package root that are not modules of it (such as
    ``__version__``) are attributes of the neutral root.
    """
    parts = module.split(".")
    if parts[0] != TOP:
        return None
    if any(module == n or module.startswith(n + ".") for n in NEUTRAL - {TOP}):
        return "neutral"
    if len(parts) == 1:
        return "neutral"
    if parts[1] in ALLOWED:
        return parts[1]
    top_module = src / TOP / parts[1]
    if top_module.is_dir() or top_module.with_suffix(".py").is_file():
        return TOP
    return "neutral"


def module_name(path: Path, src: Path) -> tuple[str, bool]:
    """Dotted name of a source file and whether it is a package ``__init__``."""
    rel = path.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def imported_modules(path: Path, src: Path) -> list[tuple[int, str]]:
    """Every module a file imports, with relative imports resolved."""
    name, is_package = module_name(path, src)
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # "from . import stream" imports a submodule, not just a name.
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
    return found


def violations(src: Path) -> list[str]:
    """Every import in *src* that breaks the layer rules."""
    problems = []
    for path in sorted(src.rglob("*.py")):
        name, _ = module_name(path, src)
        own_root = name.split(".")[0]
        own_layer = "root" if name == TOP else layer_of(name, src)
        where = path.relative_to(src)
        for lineno, target in imported_modules(path, src):
            root = target.split(".")[0]
            if own_root in STANDALONE and root == TOP:
                problems.append(f"{where}:{lineno}: standalone {own_root} imports {target}")
                continue
            if root in STANDALONE and own_root == TOP:
                if own_layer not in STANDALONE[root]:
                    problems.append(f"{where}:{lineno}: layer {own_layer} imports {target}")
                continue
            target_layer = layer_of(target, src)
            if own_layer is None or target_layer is None or target_layer == "neutral":
                continue
            if own_layer == "root":
                problems.append(f"{where}:{lineno}: the package root imports {target}")
            elif target_layer not in ALLOWED[own_layer]:
                problems.append(f"{where}:{lineno}: layer {own_layer} imports {target}")
    return problems


def test_source_tree_respects_layers() -> None:
    assert (SRC / TOP).is_dir()
    assert violations(SRC) == []


def test_every_layer_package_is_known() -> None:
    for child in (SRC / TOP).iterdir():
        if child.is_dir() and (child / "__init__.py").exists():
            assert child.name in ALLOWED, f"{child.name} has no layer rule in test_layering.py"


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_checker_detects_violations(tmp_path: Path) -> None:
    write(tmp_path, "retracesoftware/__init__.py", "from ._version import __version__\n")
    write(tmp_path, "retracesoftware/functional/__init__.py", "from .. import utils\n")
    write(tmp_path, "retracesoftware/utils/__init__.py", "import retracesoftware.functional\n")
    write(tmp_path, "retracesoftware/proxy/core.py", "from ..stream import writer\n")
    write(tmp_path, "retracesoftware/proxy/ok.py", "from retracesoftware.utils import x\n")
    write(tmp_path, "retracesoftware/stream/__init__.py", "from retracesoftware import install\n")
    write(tmp_path, "retracesoftware/stream/v.py", "from retracesoftware import __version__\n")
    write(tmp_path, "retracesoftware/utils/r.py", "import reaktome\n")
    write(tmp_path, "retracesoftware/cli.py", "from . import install\n")
    write(tmp_path, "retracesoftware/proxy/cli.py", "from retracesoftware import cli\n")
    write(tmp_path, "reaktome/__init__.py", "import retracesoftware.proxy\n")
    found = violations(tmp_path)
    assert found == [
        "reaktome/__init__.py:1: standalone reaktome imports retracesoftware.proxy",
        "retracesoftware/functional/__init__.py:1: layer functional imports retracesoftware.utils",
        "retracesoftware/proxy/cli.py:1: layer proxy imports retracesoftware.cli",
        "retracesoftware/proxy/core.py:1: layer proxy imports retracesoftware.stream",
        "retracesoftware/proxy/core.py:1: layer proxy imports retracesoftware.stream.writer",
        "retracesoftware/stream/__init__.py:1: layer stream imports retracesoftware.install",
        "retracesoftware/utils/r.py:1: layer utils imports reaktome",
    ]
