"""tools/release_matrix.py: which wheels a release run builds."""

from __future__ import annotations

import importlib.util
import json
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


m = load_tool("release_matrix")


def test_full_release_builds_every_platform_and_series() -> None:
    plan = m.plan()
    wheels = {(w["platform"], w["series"]) for w in plan["wheels"]}
    assert wheels == {(p, s) for p in m.PLATFORMS for s in m.PACKAGE_SERIES}
    runtime = {(r["platform"], r["series"]) for r in plan["runtime"]}
    assert runtime == {(p, s) for p in m.PLATFORMS for s in m.RUNTIME_SERIES}
    assert plan["build_any"] and plan["wheels_any"] and plan["runtime_any"]
    entry = next(w for w in plan["wheels"] if w["platform"] == "linux-aarch64")
    assert entry["runner"] == "ubuntu-24.04-arm" and entry["archs"] == "aarch64"
    assert entry["build"].startswith("cp3") and entry["build"].endswith("-*")


def test_one_series() -> None:
    plan = m.plan(series="3.12")
    assert {w["build"] for w in plan["wheels"]} == {"cp312-*"}
    assert len(plan["wheels"]) == len(m.PLATFORMS)
    # an explicitly requested series is built even if it is not a default runtime series
    assert {r["series"] for r in plan["runtime"]} == {"3.12"}


def test_one_platform() -> None:
    plan = m.plan(platform="macos-arm64")
    assert {w["platform"] for w in plan["wheels"]} == {"macos-arm64"}
    assert {w["runner"] for w in plan["wheels"]} == {"macos-14"}
    assert len(plan["runtime"]) == len(m.RUNTIME_SERIES)


def test_publish_only_builds_nothing() -> None:
    plan = m.plan(publish_only=True)
    assert plan == {
        "wheels": [],
        "runtime": [],
        "wheels_any": False,
        "runtime_any": False,
        "build_any": False,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"series": "3.10"}, "unknown series '3.10'"), ({"platform": "win"}, "unknown platform")],
)
def test_rejects_unknown_selections(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(m.MatrixError, match=message):
        m.plan(**kwargs)


def test_github_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    assert m.main(["--series", "3.13", "--platform", "linux-x86_64"]) == 0
    lines = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert lines["build_any"] == "true" and lines["runtime_any"] == "true"
    assert json.loads(lines["wheels"])[0]["build"] == "cp313-*"
    assert capsys.readouterr().out.splitlines() == output.read_text().splitlines()
    assert m.main(["--series", "2.7"]) == 2
    assert "unknown series" in capsys.readouterr().err
