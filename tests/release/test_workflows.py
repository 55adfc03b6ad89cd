"""The GitHub workflows: triggers, inputs and the order of the release jobs.

Needs PyYAML, which is not a test dependency of the package: ``nox -s lint``
installs it and runs this file (after actionlint), so it never goes unchecked.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed; `nox -s lint` runs this file")

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
BUILD_JOBS = {"sdist", "wheels", "runtime", "docs"}


def load_tool(name: str) -> ModuleType:
    """Import ``tools/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"_tools_{name}", ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as the boolean True.
    data["on"] = data.pop(True, data.get("on"))
    return data


def needs(job: dict[str, Any]) -> set[str]:
    value = job.get("needs", [])
    return {value} if isinstance(value, str) else set(value)


def ancestors(jobs: dict[str, Any], name: str) -> set[str]:
    found: set[str] = set()
    stack = list(needs(jobs[name]))
    while stack:
        current = stack.pop()
        if current not in found:
            found.add(current)
            stack.extend(needs(jobs[current]))
    return found


def steps_text(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) + str(step.get("uses", "")) for step in job["steps"])


def release_graph_problems(workflow: dict[str, Any]) -> list[str]:
    """Return what is wrong with the order of the release workflow's jobs."""
    jobs = workflow["jobs"]
    problems = []
    for required in ("check", *sorted(BUILD_JOBS), "release", "publish"):
        if required not in jobs:
            problems.append(f"job {required!r} is missing")
    if problems:
        return problems
    if needs(jobs["check"]):
        problems.append("'check' must run first (it needs nothing)")
    if "release_check.py --tag" not in steps_text(jobs["check"]):
        problems.append("'check' does not compare the tag with VERSION")
    for name in jobs:
        if name != "check" and "check" not in ancestors(jobs, name):
            problems.append(f"{name!r} can start before the tag check")
    for name in BUILD_JOBS:
        if "check" not in needs(jobs[name]):
            problems.append(f"build job {name!r} does not need 'check' directly")
    for final in ("release", "publish"):
        missing = BUILD_JOBS - ancestors(jobs, final)
        if missing:
            problems.append(f"{final!r} can run before {sorted(missing)} finished")
    if "release" not in ancestors(jobs, "publish"):
        problems.append("'publish' can run before the GitHub release is updated")
    for final in ("release", "publish"):
        condition = str(jobs[final].get("if", ""))
        if "!contains(needs.*.result, 'failure')" not in condition:
            problems.append(f"{final!r} does not stop when a build failed")
    return problems


@pytest.fixture(scope="module")
def release() -> dict[str, Any]:
    return load("release.yml")


def test_release_job_graph(release: dict[str, Any]) -> None:
    assert release_graph_problems(release) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda j: j["publish"].update(needs=["check", "release"]) or None, None),
        (lambda j: j["release"].update(needs=["check", "sdist", "docs"]), "'release' can run"),
        (lambda j: j["wheels"].pop("needs"), "'wheels' can start before the tag check"),
        (lambda j: j["check"].update(needs="docs"), "'check' must run first"),
        (lambda j: j["publish"].update(needs=["check", "wheels"]), "'publish' can run before"),
        (lambda j: j["release"].update({"if": "always()"}), "does not stop when a build failed"),
        (lambda j: j.pop("runtime"), "job 'runtime' is missing"),
    ],
)
def test_job_graph_checker_catches_misordering(
    release: dict[str, Any], mutate: Any, expected: str | None
) -> None:
    broken = copy.deepcopy(release)
    mutate(broken["jobs"])
    problems = release_graph_problems(broken)
    if expected is None:  # publish still reaches every build through 'release'
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


def test_release_triggers_and_inputs_match_the_matrix_tool(release: dict[str, Any]) -> None:
    matrix = load_tool("release_matrix")
    assert release["on"]["push"] == {"tags": ["v*"]}
    inputs = release["on"]["workflow_dispatch"]["inputs"]
    assert inputs["tag"]["required"] is True
    assert inputs["series"]["options"] == ["all", *matrix.PACKAGE_SERIES]
    assert inputs["platform"]["options"] == ["all", *matrix.PLATFORMS]
    assert inputs["publish_only"]["type"] == inputs["publish_pypi"]["type"] == "boolean"
    plan = steps_text(release["jobs"]["check"])
    assert "tools/release_matrix.py" in plan and "--publish-only" in plan


def test_every_job_builds_the_tag(release: dict[str, Any]) -> None:
    for name, job in release["jobs"].items():
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("ref") == "${{ env.TAG }}", name


def test_runtime_wheels_use_the_nox_runtime_sessions(release: dict[str, Any]) -> None:
    text = steps_text(release["jobs"]["runtime"])
    assert 'nox -s "build-runtime-${{ matrix.series }}"' in text
    assert 'nox -s "runtime-wheel-${{ matrix.series }}"' in text


def test_uploads_are_additive_and_publishing_skips_existing(release: dict[str, Any]) -> None:
    upload = steps_text(release["jobs"]["release"])
    assert "--clobber" not in upload and "grep -qxF" in upload
    assert release["jobs"]["release"]["permissions"] == {"contents": "write"}
    publish = release["jobs"]["publish"]
    assert publish["permissions"]["id-token"] == "write"
    step = next(s for s in publish["steps"] if "pypi-publish" in str(s.get("uses", "")))
    assert step["with"]["skip-existing"] is True
    assert publish["environment"]["name"] == "pypi"
    assert release["permissions"] == {"contents": "read"}


def test_cibuildwheel_version_is_the_same_everywhere(release: dict[str, Any]) -> None:
    pinned = release["env"]["CIBUILDWHEEL_VERSION"]
    nox_module = (ROOT / "noxsessions" / "release.py").read_text(encoding="utf-8")
    match = re.search(r'^CIBUILDWHEEL = "cibuildwheel==([^"]+)"', nox_module, re.MULTILINE)
    assert match is not None and match[1] == pinned


def test_ci_runs_lint_tests_and_docs_on_pull_requests() -> None:
    ci = load("ci.yml")
    assert "pull_request" in ci["on"]
    jobs = ci["jobs"]
    assert set(jobs) >= {"lint", "tests", "docs"}
    assert jobs["tests"]["strategy"]["matrix"]["python"] == ["3.11", "3.12", "3.13"]
    assert 'nox -s "tests-${{ matrix.python }}"' in steps_text(jobs["tests"])
    assert "nox -s lint" in steps_text(jobs["lint"])
    docs = steps_text(jobs["docs"])
    assert "nox -s docs" in docs and "git diff --exit-code" in docs
