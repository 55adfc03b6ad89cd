"""The installed package holds every source file and no build inputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import retracesoftware

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(retracesoftware.__file__).resolve().parent.parent


def expected_files() -> list[str]:
    spec = importlib.util.spec_from_file_location("package_files", ROOT / "tools/package_files.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.package_files(ROOT / "src")


def test_installed_from_a_build_not_the_source_tree() -> None:
    assert SITE != ROOT / "src", "tests must run against the installed package"


def test_every_source_file_is_installed() -> None:
    files = expected_files()
    assert "retracesoftware/functional/_pure.py" in files
    missing = [f for f in files if not (SITE / f).is_file()]
    assert missing == []


def test_no_build_inputs_are_installed() -> None:
    for package in {f.split("/")[0] for f in expected_files()}:
        for path in (SITE / package).rglob("*"):
            assert path.name != "meson.build", path
            assert path.suffix not in {".c", ".cpp", ".h", ".hpp", ".in"}, path


def test_version_comes_from_version_file() -> None:
    assert retracesoftware.__version__ == (ROOT / "VERSION").read_text().strip()


def test_native_functional_is_installed() -> None:
    import retracesoftware.functional as functional

    assert functional.backend == "native", functional.backend_reason
