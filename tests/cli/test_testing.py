"""``retrace test`` / ``-p retracesoftware.testing`` / ``TestRunner``: each test is recorded,
then replayed, and divergent tests are reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SAMPLE = Path(__file__).resolve().parent / "sample_project"
PYTEST = ["-q", "-p", "no:cacheprovider"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RETRACE", "PYTEST"))}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def summary_line(out: str) -> str:
    return next(line for line in out.splitlines() if "tests recorded (" in line)


def test_sample_project_replays_identically(tmp_path: Path) -> None:
    out = run("-m", "retracesoftware", "test", "--", *PYTEST, str(SAMPLE), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    line = summary_line(out.stdout)
    assert line.startswith("17 tests recorded (")
    assert line.endswith("and replayed: 17 identical, 0 diverged")
    events = int(line.split("(")[1].split()[0])
    assert events > 100  # clocks, randomness and file operations were really recorded
    assert "15 passed, 1 skipped, 1 xfailed" in out.stdout


DIVERGENT = """\
import os, random, time

import pytest

RUNS = []


def test_identical(tmp_path):
    (tmp_path / "f").write_text(str(random.random()))
    print(time.time(), (tmp_path / "f").read_text())


def test_calls_fewer_clocks_on_replay():
    RUNS.append(1)
    if len(RUNS) == 1:  # only the first (recorded) run reads the clock
        time.time()


def test_prints_differently_on_replay():
    RUNS.append(1)
    print("run", len(RUNS))


def test_fails_in_both_runs():
    assert random.random() > 2


@pytest.mark.skip
def test_skipped():
    pass
"""


def test_divergent_tests_fail_and_are_listed(tmp_path: Path) -> None:
    (tmp_path / "test_suite.py").write_text(DIVERGENT, encoding="utf-8")
    out = run("-m", "pytest", "-p", "retracesoftware.testing", *PYTEST, ".", cwd=tmp_path)
    assert out.returncode == 1
    assert summary_line(out.stdout).endswith("and replayed: 3 identical, 2 diverged")
    text = out.stdout
    assert "DIVERGED test_suite.py::test_calls_fewer_clocks_on_replay: replay diverged" in text
    assert "the recording expected a call to time.time()" in text
    assert (
        "DIVERGED test_suite.py::test_prints_differently_on_replay: call: the test's stdout "
        "differs between record and replay" in text
    )
    assert "FAILED test_suite.py::test_calls_fewer_clocks_on_replay" in text
    assert "FAILED test_suite.py::test_fails_in_both_runs - assert" in text  # its own failure
    assert "3 failed, 1 passed, 1 skipped" in text

    report_only = run(
        "-m",
        "retracesoftware",
        "test",
        "--report-only",
        "--",
        *PYTEST,
        "-k",
        "not both",
        ".",
        cwd=tmp_path,
    )
    assert report_only.returncode == 0, report_only.stdout
    assert "2 diverged" in report_only.stdout
    assert "3 passed, 1 skipped, 1 deselected" in report_only.stdout


def test_python_api_counts(tmp_path: Path) -> None:
    (tmp_path / "test_suite.py").write_text(DIVERGENT, encoding="utf-8")
    code = textwrap.dedent(
        f"""
        import json
        from retracesoftware.testing import TestRunner
        summary = TestRunner({[*PYTEST, "."]!r}).run()
        print(json.dumps({{"exit": summary.exit_code, "counts": summary.counts(),
                          "diverged": [r.nodeid for r in summary.diverged]}}))
        """
    )
    out = run("-c", code, cwd=tmp_path)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["exit"] == 1
    assert data["counts"] == {
        "tests": 5,
        "replayed": 3,
        "diverged": 2,
        "passed": 3,
        "failed": 1,
        "skipped": 1,
    }
    assert data["diverged"] == [
        "test_suite.py::test_calls_fewer_clocks_on_replay",
        "test_suite.py::test_prints_differently_on_replay",
    ]


def test_usage_error_without_pytest(tmp_path: Path) -> None:
    out = run("-m", "retracesoftware", "test", "--", "--no-such-pytest-option", cwd=tmp_path)
    assert out.returncode == 4  # pytest.ExitCode.USAGE_ERROR: the status is pytest's
    assert "Traceback" not in out.stderr


def test_invalid_configuration_is_a_usage_error(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "bad.toml").write_text("[modules.time]\nfuntions = ['time']\n", encoding="utf-8")
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n", encoding="utf-8")
    out = run(
        "-m", "retracesoftware", "test", "--config", str(conf), "--", *PYTEST, ".", cwd=tmp_path
    )
    assert out.returncode == 4  # pytest.ExitCode.USAGE_ERROR
    assert "retrace: invalid configuration" in out.stderr
    assert "'funtions'" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_without_pytest_installed(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['pytest'] = None\n"
        "from retracesoftware.__main__ import main\n"
        "sys.exit(main(['test', '--', '-q']))\n"
    )
    out = run("-c", code, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == "retrace: `retrace test` needs pytest: pip install pytest"
