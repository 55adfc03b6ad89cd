"""The runtime build driver: versions, source verification, porting reports."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("cpython_runtime", ROOT / "tools/cpython_runtime.py")
driver = importlib.util.module_from_spec(spec)
sys.modules["cpython_runtime"] = driver
spec.loader.exec_module(driver)

needs_patch = pytest.mark.skipif(shutil.which("patch") is None, reason="GNU patch missing")


def test_version_ranges():
    assert driver.version_in_range("3.13.5", ">=3.13.0,<3.14")
    assert not driver.version_in_range("3.14.0", ">=3.13.0,<3.14")
    assert not driver.version_in_range("3.12.9", ">=3.13.0,<3.14")
    with pytest.raises(driver.RuntimeBuildError, match="not a final CPython release"):
        driver.version_tuple("3.13.0rc1")


def test_real_series_manifests():
    for name in ("3.11", "3.12", "3.13", "3.14"):
        series = driver.load_series(name)
        assert series.name == name and series.probe_abi == "retrace-probe-1"
        for patch in series.patches:
            assert (series.directory / patch).is_file()
        for release in series.verified:
            assert series.accepts(release["version"]) and len(release["sha256"]) == 64
    assert driver.load_series("3.13").verified and driver.load_series("3.11").verified
    assert not driver.load_series("3.12").verified and not driver.load_series("3.14").verified
    with pytest.raises(driver.RuntimeBuildError, match=r"no patch series '2\.7'"):
        driver.load_series("2.7")


def test_series_without_release_explains_how_to_port(monkeypatch):
    monkeypatch.delenv("CPYTHON_SOURCE", raising=False)
    monkeypatch.delenv("CPYTHON_REPO_URL", raising=False)
    with pytest.raises(driver.RuntimeBuildError) as info:
        driver.resolve_source(
            driver.load_series("3.12"),
            version=None,
            source=None,
            repo_url=None,
            tag=None,
            unverified=False,
        )
    message = str(info.value)
    assert "CPYTHON_SOURCE" in message and "port-patches-3.12" in message


def make_tree(root: Path, version: str, body: str) -> Path:
    (root / "Include").mkdir(parents=True)
    (root / "Include/patchlevel.h").write_text(f'#define PY_VERSION "{version}"\n')
    (root / "Python").mkdir()
    (root / "Python/hooks.c").write_text(body)
    return root


def make_tarball(tmp_path: Path, version: str, body: str) -> Path:
    tree = make_tree(tmp_path / f"Python-{version}", version, body)
    tarball = tmp_path / f"Python-{version}.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tree, arcname=tree.name)
    return tarball


def fake_series(tmp_path: Path, monkeypatch, sha256: str) -> None:
    patches = tmp_path / "patches"
    (patches / "9.1").mkdir(parents=True, exist_ok=True)
    (patches / "9.2").mkdir(parents=True, exist_ok=True)
    (patches / "9.1/0001-hook.patch").write_text(
        "--- a/Python/hooks.c\n+++ b/Python/hooks.c\n@@ -1,6 +1,7 @@\n"
        " int a;\n int b;\n int c;\n+int hook;\n int d;\n int e;\n int f;\n"
    )
    (patches / "9.1/series.toml").write_text(
        '[series]\nname = "9.1"\nversions = ">=9.1.0,<9.2"\nprobe_abi = "retrace-probe-1"\n'
        'patches = ["0001-hook.patch"]\n\n[[verified]]\nversion = "9.1.0"\n'
        f'tarball = "Python-9.1.0.tar.gz"\nsha256 = "{sha256}"\n'
    )
    (patches / "9.2/series.toml").write_text(
        '[series]\nname = "9.2"\nversions = ">=9.2.0,<9.3"\nprobe_abi = "retrace-probe-1"\n'
        'port_from = "9.1"\npatches = []\n'
    )
    monkeypatch.setattr(driver, "PATCHES", patches)
    monkeypatch.setenv("RETRACE_CPYTHON_CACHE", str(tmp_path / "cache"))


@needs_patch
def test_sha256_is_enforced(tmp_path, monkeypatch):
    tarball = make_tarball(tmp_path, "9.1.0", "int a;\nint b;\nint c;\nint d;\nint e;\nint f;\n")
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    fake_series(tmp_path, monkeypatch, "0" * 64)
    series = driver.load_series("9.1")
    with pytest.raises(driver.RuntimeBuildError, match=r"sha256 of Python-9\.1\.0\.tar\.gz is"):
        driver.resolve_source(
            series, version=None, source=str(tarball), repo_url=None, tag=None, unverified=False
        )
    source = driver.resolve_source(
        series, version=None, source=str(tarball), repo_url=None, tag=None, unverified=True
    )
    assert not source.verified and source.sha256 == digest
    fake_series(tmp_path, monkeypatch, digest)
    series = driver.load_series("9.1")
    source = driver.resolve_source(
        series, version=None, source=str(tarball), repo_url=None, tag=None, unverified=False
    )
    assert source.verified and source.version == "9.1.0"
    steps: list[str] = []
    tree = driver.prepare(series, source, vanilla=False, build_dir=tmp_path / "b", steps=steps)
    assert "int hook;" in (tree / "Python/hooks.c").read_text()
    assert steps[:2] == ["unpack", "apply"]
    again: list[str] = []
    driver.prepare(series, source, vanilla=False, build_dir=tmp_path / "b", steps=again)
    assert "unpack" not in again, "an unchanged source was unpacked again"


@needs_patch
def test_port_reports_rejects_precisely(tmp_path, monkeypatch):
    if shutil.which("git") is None:
        pytest.skip("git missing")
    fake_series(tmp_path, monkeypatch, "1" * 64)
    monkeypatch.setattr(driver, "load_series", _verified_origin(driver.load_series))
    tree = make_tree(
        tmp_path / "src-9.2.0", "9.2.0", "int a;\nint x;\nint y;\nint w;\nint v;\nint f;\n"
    )
    source = driver.Source(version="9.2.0", path=tree, sha256=None, verified=False)
    report = driver.port(driver.load_series("9.2"), source, tmp_path / "candidate")
    assert not report["ok"]
    (entry,) = report["patches"]
    assert entry["patch"] == "0001-hook.patch" and not entry["clean"]
    assert entry["hunks"][0]["status"] == "FAILED"
    assert entry["rejects"][0]["file"] == "Python/hooks.c"
    assert "+int hook;" in entry["rejects"][0]["reject"]
    text = driver.format_port_report(report)
    assert "NEEDS REVIEW" in text and "REJECT in Python/hooks.c" in text
    assert (tmp_path / "candidate/series.toml").is_file()
    assert (tmp_path / "candidate/port-report.json").is_file()


@needs_patch
def test_port_clean_writes_candidate(tmp_path, monkeypatch):
    if shutil.which("git") is None:
        pytest.skip("git missing")
    fake_series(tmp_path, monkeypatch, "1" * 64)
    monkeypatch.setattr(driver, "load_series", _verified_origin(driver.load_series))
    tree = make_tree(
        tmp_path / "src-9.2.1", "9.2.1", "int z;\nint a;\nint b;\nint c;\nint d;\nint e;\nint f;\n"
    )
    source = driver.Source(version="9.2.1", path=tree, sha256=None, verified=False)
    report = driver.port(driver.load_series("9.2"), source, tmp_path / "candidate")
    assert report["ok"], driver.format_port_report(report)
    assert report["patches"][0]["hunks"][0]["detail"] == "offset 1 line"
    patch = (tmp_path / "candidate/0001-hook.patch").read_text()
    assert "+int hook;" in patch
    manifest = (tmp_path / "candidate/series.toml").read_text()
    assert '"0001-hook.patch"' in manifest and 'name = "9.2"' in manifest
    applied = subprocess.run(
        ["patch", "-p1", "--dry-run", "-i", str(tmp_path / "candidate/0001-hook.patch")],
        cwd=make_tree(
            tmp_path / "again", "9.2.1", "int z;\nint a;\nint b;\nint c;\nint d;\nint e;\nint f;\n"
        ),
        capture_output=True,
        text=True,
    )
    assert applied.returncode == 0, applied.stdout


def _verified_origin(load):
    """The fake origin series must count as verified for porting."""

    def wrapper(name):
        return load(name)

    return wrapper


def test_series_without_patches_cannot_be_applied():
    with pytest.raises(driver.RuntimeBuildError, match="no patches yet"):
        driver.patch_files(driver.load_series("3.14"))


def test_build_directory_lock_makes_a_second_build_wait(tmp_path: Path) -> None:
    build_dir = tmp_path / "build"
    tool = str(ROOT / "tools/cpython_runtime.py")
    waiter = "\n".join(
        [
            "import sys, importlib.util",
            "from pathlib import Path",
            f"spec = importlib.util.spec_from_file_location('d', {tool!r})",
            "d = importlib.util.module_from_spec(spec)",
            "sys.modules['d'] = d",
            "spec.loader.exec_module(d)",
            f"with d.exclusive(Path({str(build_dir)!r})):",
            "    print('acquired', flush=True)",
        ]
    )
    with driver.exclusive(build_dir):
        with driver.exclusive(build_dir):  # reentrant in one process
            pass
        proc = subprocess.Popen(
            [sys.executable, "-c", waiter], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        message = proc.stderr.readline()
        assert "waiting for another build" in message
        assert proc.poll() is None, "the second build must wait while the first holds the lock"
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert out.strip() == "acquired"


def test_a_build_from_other_inputs_is_stale(tmp_path: Path, monkeypatch) -> None:
    overlay = tmp_path / "overlay"
    (overlay / "Modules").mkdir(parents=True)
    (overlay / "Modules" / "_retrace.c").write_text("/* one */\n")
    monkeypatch.setattr(driver, "OVERLAY", overlay)
    monkeypatch.setattr(driver, "ROOT", tmp_path)
    monkeypatch.setattr(driver, "PATCHES", tmp_path / "patches")
    series_dir = tmp_path / "patches" / "3.13"
    series_dir.mkdir(parents=True)
    (series_dir / "0001-hook.patch").write_text("--- a\n+++ b\n")
    (series_dir / "series.toml").write_text(
        '[series]\nname = "3.13"\nversions = ">=3.13.0,<3.14"\nprobe_abi = "x"\n'
        'patches = ["0001-hook.patch"]\n'
    )
    build = tmp_path / "build" / "3.13.5-retrace"
    build.mkdir(parents=True)
    assert not driver.build_is_current(build)  # no stamp: an older driver made it
    (build / driver.INPUTS_FILE).write_text(driver.runtime_inputs(driver.load_series("3.13")))
    assert driver.build_is_current(build)
    (overlay / "Modules" / "_retrace.c").write_text("/* two */\n")
    assert not driver.build_is_current(build)
    (overlay / "Modules" / "_retrace.c").write_text("/* one */\n")
    assert driver.build_is_current(build)
    (series_dir / "0001-hook.patch").write_text("--- a\n+++ b\n@@\n")
    assert not driver.build_is_current(build)
