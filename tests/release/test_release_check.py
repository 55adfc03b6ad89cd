"""tools/release_check.py: VERSION, CHANGELOG, tag, sdist and container-engine checks."""

from __future__ import annotations

import importlib.util
import io
import os
import re
import stat
import sys
import tarfile
import tomllib
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


rc = load_tool("release_check")
ReleaseError = rc.ReleaseError

# -- VERSION ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "version", ["0.1.0", "1.2.3", "10.0.0rc1", "1.0.0a0", "2.1.0b3", "1.0.0.post1", "1.1.0.dev4"]
)
def test_valid_versions(version: str) -> None:
    assert rc.check_version(version + "\n") == version


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "01.0.0", "1.0.0-rc1", "1.0.0RC1", "1.0.x"])
def test_invalid_versions(version: str) -> None:
    with pytest.raises(ReleaseError, match="not a canonical release version"):
        rc.check_version(version + "\n")


@pytest.mark.parametrize(
    "text", ["1.0.0", "1.0.0\n2.0.0\n", " 1.0.0\n", "1.0.0 \n", "1.0.0\n\n", "\n", ""]
)
def test_version_file_must_be_one_clean_line(text: str) -> None:
    with pytest.raises(ReleaseError):
        rc.check_version(text)


def test_the_repository_version_is_valid() -> None:
    rc.check_version((ROOT / "VERSION").read_text(encoding="utf-8"))


# -- CHANGELOG -----------------------------------------------------------------------------------

CHANGELOG = """# Changelog

## [Unreleased]

### Added
- something new

## [1.2.0] - 2026-11-01

### Fixed
- a bug

## [1.1.0] - 2026-10-01

- older
"""


def test_changelog_section_found_with_date_and_notes() -> None:
    assert rc.check_changelog(CHANGELOG, "1.2.0") == "2026-11-01"
    assert rc.changelog_section(CHANGELOG, "1.2.0") == "### Fixed\n- a bug\n"
    assert rc.changelog_section(CHANGELOG, "1.1.0") == "- older\n"


def test_changelog_without_the_version() -> None:
    with pytest.raises(ReleaseError, match=r"no section for 1\.3\.0: move the entries"):
        rc.check_changelog(CHANGELOG, "1.3.0")
    # a version that is a prefix of another must not match it
    with pytest.raises(ReleaseError, match=re.escape("no section for 1.2")):
        rc.check_changelog(CHANGELOG, "1.2")


def test_changelog_heading_needs_a_date() -> None:
    with pytest.raises(ReleaseError, match="must read"):
        rc.check_changelog("## [1.0.0]\n- x\n", "1.0.0")
    with pytest.raises(ReleaseError, match="must read"):
        rc.check_changelog("## [1.0.0] - 1st May\n- x\n", "1.0.0")


def test_changelog_section_needs_entries() -> None:
    with pytest.raises(ReleaseError, match="has no entries"):
        rc.check_changelog(
            "## [1.0.0] - 2026-01-01\n\n### Added\n\n## [0.9.0] - 2025-01-01\n- x\n", "1.0.0"
        )


# -- tag -----------------------------------------------------------------------------------------


def test_tag_must_equal_v_plus_version() -> None:
    rc.check_tag("v1.2.0", "1.2.0")
    with pytest.raises(ReleaseError, match="does not match VERSION"):
        rc.check_tag("v1.2.1", "1.2.0")
    with pytest.raises(ReleaseError, match="does not match VERSION"):
        rc.check_tag("v1.2", "1.2.0")
    for tag in ("1.2.0", "v1 2", "", "release-1.2.0", "vX"):
        with pytest.raises(ReleaseError, match="is not a release tag"):
            rc.check_tag(tag, "1.2.0")


# -- sdist ---------------------------------------------------------------------------------------


def make_sdist(
    directory: Path,
    version: str = "1.0.0",
    files: dict[str, str] | None = None,
    *,
    name: str | None = None,
    top: str | None = None,
    symlink: str | None = None,
) -> Path:
    top = top or f"retracesoftware-{version}"
    path = directory / (name or f"retracesoftware-{version}.tar.gz")
    contents = {f: "x" for f in rc.REQUIRED_SDIST_FILES}
    contents["PKG-INFO"] = f"Metadata-Version: 2.1\nName: retracesoftware\nVersion: {version}\n"
    contents.update(files or {})
    with tarfile.open(path, "w:gz") as archive:
        for member, text in contents.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{member}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(f"{top}/{symlink}")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            archive.addfile(info)
    return path


def test_good_sdist(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, files={"src/retracesoftware/extra.py": ""})
    names = rc.check_sdist(sdist, "1.0.0", ["src/retracesoftware/extra.py"])
    assert "src/retracesoftware/extra.py" in names and "PKG-INFO" in names


def test_sdist_missing_a_tracked_file(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path)
    with pytest.raises(ReleaseError, match=r"lacks 1 file\(s\): src/new\.py; commit them"):
        rc.check_sdist(sdist, "1.0.0", ["src/new.py"])


@pytest.mark.parametrize(
    "junk",
    ["src/x.cpython-311-x86_64-linux-gnu.so", "src/__pycache__/a.pyc", ".nox/x/y", "build/a"],
)
def test_sdist_with_build_or_cache_files(tmp_path: Path, junk: str) -> None:
    sdist = make_sdist(tmp_path, files={junk: ""})
    with pytest.raises(ReleaseError, match="contains build or cache files"):
        rc.check_sdist(sdist, "1.0.0")


def test_sdist_with_wrong_name_or_metadata(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match=re.escape("expected retracesoftware-1.0.0.tar.gz")):
        rc.check_sdist(make_sdist(tmp_path, name="other-1.0.0.tar.gz"), "1.0.0")
    sdist = make_sdist(tmp_path, files={"PKG-INFO": "Name: retracesoftware\nVersion: 0.9.0\n"})
    with pytest.raises(ReleaseError, match=re.escape("declares version 0.9.0, expected 1.0.0")):
        rc.check_sdist(sdist, "1.0.0")


def test_sdist_with_links_or_foreign_paths(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="is a link"):
        rc.check_sdist(make_sdist(tmp_path, symlink="evil"), "1.0.0")
    (tmp_path / "b").mkdir()
    with pytest.raises(
        ReleaseError, match=re.escape("outside the retracesoftware-1.0.0/ directory")
    ):
        rc.check_sdist(make_sdist(tmp_path / "b", top="elsewhere"), "1.0.0")


def test_unreadable_sdist(tmp_path: Path) -> None:
    path = tmp_path / "retracesoftware-1.0.0.tar.gz"
    path.write_bytes(b"not a tarball")
    with pytest.raises(ReleaseError, match="cannot be read"):
        rc.check_sdist(path, "1.0.0")


def test_tracked_files_outside_git(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="cannot list the files tracked by git"):
        rc.tracked_files(tmp_path)


# -- whole run and command line -------------------------------------------------------------------


def make_tree(root: Path, version: str = "1.0.0", changelog: str = CHANGELOG) -> Path:
    root.mkdir(exist_ok=True)
    (root / "VERSION").write_text(version + "\n", encoding="utf-8")
    (root / "CHANGELOG.md").write_text(changelog, encoding="utf-8")
    return root


def test_run_checks_collects_every_problem(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t", "1.2.0")
    assert rc.run_checks(root, "v1.2.0", None) == []
    problems = rc.run_checks(make_tree(tmp_path / "u", "1.3.0"), "v9", None)
    assert len(problems) == 2
    assert "no section for 1.3.0" in problems[0] and "does not match VERSION" in problems[1]
    (root / "VERSION").write_text("bad\n", encoding="utf-8")
    assert "not a canonical release version" in rc.run_checks(root, None, None)[0]


def test_command_line_exit_codes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(rc, "ROOT", make_tree(tmp_path / "t", "1.2.0"))
    assert rc.main(["--tag", "v1.2.0"]) == 0
    assert rc.main(["--tag", "v1.2.1"]) == 1
    assert "release-check: tag 'v1.2.1' does not match" in capsys.readouterr().err
    assert rc.main(["--notes"]) == 0
    assert capsys.readouterr().out == "### Fixed\n- a bug\n"


# -- container engine -----------------------------------------------------------------------------


def fake_tool(directory: Path, name: str, exit_code: int, message: str) -> None:
    script = directory / name
    script.write_text(f"#!/bin/sh\necho '{message}' >&2\nexit {exit_code}\n", encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.mark.skipif(sys.platform == "win32", reason="uses shell scripts as fake engines")
def test_container_engine_needs_a_daemon_that_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert rc.container_engine() == (None, "docker: not installed; podman: not installed")
    fake_tool(tmp_path, "docker", 1, "Cannot connect to the Docker daemon")
    engine, reason = rc.container_engine()
    assert engine is None and "docker: Cannot connect to the Docker daemon" in reason
    fake_tool(tmp_path, "podman", 0, "ok")
    assert rc.container_engine()[0] == "podman"
    fake_tool(tmp_path, "docker", 0, "ok")
    assert rc.container_engine()[0] == "docker"
    assert os.environ["PATH"] == str(tmp_path)


# -- packaging configuration ---------------------------------------------------------------------


def test_cibuildwheel_configuration() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    cibw = config["tool"]["cibuildwheel"]
    matrix = load_tool("release_matrix")
    assert cibw["build"].split() == [f"cp{s.replace('.', '')}-*" for s in matrix.PACKAGE_SERIES]
    skip = cibw["skip"].split()
    assert "cp3??t-*" in skip and "*-musllinux_*" in skip
    assert "{project}/tests" in cibw["test-command"] and cibw["test-extras"] == ["test"]
    assert cibw["linux"]["archs"] == ["x86_64", "aarch64"]
    assert cibw["macos"]["archs"] == ["arm64"]
    archs = {p["archs"] for p in matrix.PLATFORMS.values()}
    assert archs == {*cibw["linux"]["archs"], *cibw["macos"]["archs"]}
