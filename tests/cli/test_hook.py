"""The ``.pth`` hook: ``retrace enable-hook`` / ``disable-hook`` / ``hook-status`` in a
throwaway virtual environment, and recordings made by ``RETRACE_RECORDING=FILE python app.py``.

The throwaway venv has no pip (fast to create); Retrace is made importable in it by a path
file named to sort *after* the hook file, so the hook's fallback import path is exercised.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import retracesoftware
from retracesoftware import exitcodes, hook
from retracesoftware.__main__ import main

PACKAGE_DIR = Path(retracesoftware.__file__).resolve().parent.parent


class Venv:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.python = root / "bin" / "python"
        out = subprocess.run(
            [self.python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        )
        self.site = Path(out.stdout.strip())
        self.pth = self.site / hook.PTH_NAME

    def run(
        self,
        *args: str,
        cwd: Path,
        env: dict[str, str] | None = None,
        input: str = "",
    ) -> subprocess.CompletedProcess[str]:
        full = {k: v for k, v in os.environ.items() if not k.startswith(("RETRACE", "PYTHON"))}
        full.update(env or {})
        return subprocess.run(
            [str(self.python), *args],
            cwd=cwd,
            env=full,
            capture_output=True,
            text=True,
            input=input,
            timeout=60,
        )

    def retrace(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "retracesoftware", *args, cwd=cwd)

    def files(self) -> set[str]:
        return {str(p.relative_to(self.root)) for p in self.root.rglob("*")}


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    root = tmp_path_factory.mktemp("hookvenv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    env = Venv(root)
    (env.site / "zz_retrace_under_test.pth").write_text(f"{PACKAGE_DIR}\n", encoding="utf-8")
    return env


@pytest.fixture
def enabled(venv: Venv, tmp_path: Path) -> Venv:
    out = venv.retrace("enable-hook", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    yield venv
    assert venv.retrace("disable-hook", cwd=tmp_path).returncode == 0


APP = """\
import os, random, sys, time
with open("data.txt") as fh:
    data = fh.read().strip()
print("argv", sys.argv, "time", time.time(), "random", random.random(), "data", data)
print("variable seen by the program:", os.environ.get("RETRACE_RECORDING"))
sys.exit(int(sys.argv[1]))
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# ------------------------------------------------------------------------ enable / disable


def test_enable_is_idempotent_and_says_where_the_hook_lives(venv: Venv, tmp_path: Path) -> None:
    before = venv.files()
    first = venv.retrace("enable-hook", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"hook enabled: {venv.pth}" in first.stdout
    assert "RETRACE_RECORDING" in first.stdout
    text = venv.pth.read_text(encoding="utf-8")
    again = venv.retrace("enable-hook", cwd=tmp_path)
    assert again.returncode == 0
    assert f"hook already enabled: {venv.pth}" in again.stdout
    assert venv.pth.read_text(encoding="utf-8") == text
    assert venv.files() - before == {str(venv.pth.relative_to(venv.root))}
    status = venv.retrace("hook-status", cwd=tmp_path)
    assert (status.returncode, status.stdout.strip()) == (0, f"hook enabled: {venv.pth}")

    # an outdated hook file written by Retrace is updated in place
    venv.pth.write_text("# Retrace hook (schema 0)\n", encoding="utf-8")
    updated = venv.retrace("enable-hook", cwd=tmp_path)
    assert f"hook updated: {venv.pth}" in updated.stdout
    assert venv.pth.read_text(encoding="utf-8") == text

    assert venv.retrace("disable-hook", cwd=tmp_path).returncode == 0
    assert venv.files() == before


def test_disable_leaves_nothing_behind(venv: Venv, tmp_path: Path) -> None:
    before = venv.files()
    assert venv.retrace("enable-hook", cwd=tmp_path).returncode == 0
    write(tmp_path / "data.txt", "x\n")
    write(tmp_path / "app.py", APP)
    assert venv.run("app.py", "0", cwd=tmp_path).returncode == 0
    rec = venv.run("app.py", "0", cwd=tmp_path, env={"RETRACE_RECORDING": "r.retrace"})
    assert rec.returncode == 0, rec.stderr
    out = venv.retrace("disable-hook", cwd=tmp_path)
    assert (out.returncode, out.stdout.strip()) == (0, f"hook disabled: removed {venv.pth}")
    assert venv.files() == before
    again = venv.retrace("disable-hook", cwd=tmp_path)
    assert again.returncode == 0
    assert "hook not enabled" in again.stdout
    status = venv.retrace("hook-status", cwd=tmp_path)
    assert status.returncode == 1
    assert f"would write {venv.pth}" in status.stdout
    # and with the hook gone the variable does nothing
    plain = venv.run("app.py", "0", cwd=tmp_path, env={"RETRACE_RECORDING": "s.retrace"})
    assert plain.returncode == 0
    assert not (tmp_path / "s.retrace").exists()


def test_help_explains_the_variable(venv: Venv, tmp_path: Path) -> None:
    for command in ("enable-hook", "disable-hook", "hook-status"):
        out = venv.retrace(command, "--help", cwd=tmp_path)
        assert out.returncode == 0
        text = " ".join(out.stdout.split())
        assert "RETRACE_RECORDING" in text
        assert "%p" in text
        assert "Only the process started with the variable records" in text


def _unwritable(tmp_path: Path) -> Path:
    target = tmp_path / "read-only"
    target.mkdir()
    target.chmod(0o555)
    if os.access(target, os.W_OK):  # running as root: sysfs refuses new files even then
        target = Path("/sys")
    try:
        (target / hook.PTH_NAME).open("x").close()
    except OSError:
        return target
    (target / hook.PTH_NAME).unlink()
    pytest.skip("no directory this user cannot write to")


def test_unwritable_site_packages_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = _unwritable(tmp_path)
    monkeypatch.setattr(hook, "site_packages", lambda: target)
    assert main(["enable-hook"]) == exitcodes.CANNOT_WRITE
    err = capsys.readouterr().err
    assert f"cannot install the hook: {target} is not writable" in err
    assert "Traceback" not in err
    assert not (target / hook.PTH_NAME).exists()
    assert not any(p.name.endswith(".tmp") for p in target.iterdir())


def test_missing_site_packages_and_foreign_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(hook, "site_packages", lambda: tmp_path / "absent")
    assert main(["enable-hook"]) == exitcodes.CANNOT_WRITE
    assert "does not exist" in capsys.readouterr().err
    monkeypatch.setattr(hook, "site_packages", lambda: tmp_path)
    foreign = tmp_path / hook.PTH_NAME
    foreign.write_text("import something_else\n", encoding="utf-8")
    assert main(["enable-hook"]) == exitcodes.CANNOT_WRITE
    assert "was not written by Retrace" in capsys.readouterr().err
    assert main(["disable-hook"]) == exitcodes.CANNOT_WRITE
    assert foreign.read_text(encoding="utf-8") == "import something_else\n"


# ----------------------------------------------------------------------------- start-up


def test_without_the_variable_nothing_is_imported(venv: Venv, tmp_path: Path) -> None:
    probe = "import sys; print(sorted(sys.modules)); print(sys.path)"
    without = venv.run("-c", probe, cwd=tmp_path)
    assert venv.retrace("enable-hook", cwd=tmp_path).returncode == 0
    try:
        with_hook = venv.run("-c", probe, cwd=tmp_path)
        empty = venv.run("-c", probe, cwd=tmp_path, env={"RETRACE_RECORDING": ""})
    finally:
        venv.retrace("disable-hook", cwd=tmp_path)
    assert with_hook.returncode == 0
    assert with_hook.stderr == ""
    assert with_hook.stdout == without.stdout == empty.stdout
    assert "retracesoftware" not in with_hook.stdout.splitlines()[0]


def test_recording_through_the_hook_replays(enabled: Venv, tmp_path: Path) -> None:
    write(tmp_path / "data.txt", "recorded contents\n")
    write(tmp_path / "app.py", APP)
    rec = enabled.run("app.py", "3", "x y", cwd=tmp_path, env={"RETRACE_RECORDING": "app.retrace"})
    assert rec.returncode == 3, rec.stderr
    assert "argv ['app.py', '3', 'x y']" in rec.stdout
    # only this process records: the program does not see the variable
    assert "variable seen by the program: None" in rec.stdout
    assert (tmp_path / "app.retrace").stat().st_mode & 0o777 == 0o600

    write(tmp_path / "data.txt", "changed\n")
    rep = enabled.retrace("replay", "app.retrace", cwd=tmp_path)
    assert (rep.returncode, rep.stdout, rep.stderr) == (rec.returncode, rec.stdout, rec.stderr)
    info = json.loads(enabled.retrace("inspect", "app.retrace", "--json", cwd=tmp_path).stdout)
    assert info["program"] == ["app.py", "3", "x y"]
    assert info["exit_status"] == 3
    assert info["calls_by_function"]["time.time"] >= 1


@pytest.mark.parametrize(
    "command, argv",
    [
        (["-X", "dev", "-Wdefault", "-m", "prog", "m1"], ["-m", "prog", "m1"]),
        (["-B", "-c", "import prog", "c1"], ["-c", "import prog", "c1"]),
        (["-I", "prog.py", "i1"], ["prog.py", "i1"]),
    ],
)
def test_module_and_code_programs(
    enabled: Venv, tmp_path: Path, command: list[str], argv: list[str]
) -> None:
    write(tmp_path / "prog.py", "import sys, time, uuid\nprint(sys.argv[1:], uuid.uuid4())\n")
    rec = enabled.run(*command, cwd=tmp_path, env={"RETRACE_RECORDING": "p.retrace"})
    assert rec.returncode == 0, rec.stderr
    rep = enabled.retrace("replay", "p.retrace", cwd=tmp_path)
    assert (rep.returncode, rep.stdout) == (0, rec.stdout)
    info = json.loads(enabled.retrace("inspect", "p.retrace", "--json", cwd=tmp_path).stdout)
    assert info["program"] == argv


CHILD = "import os, random\nprint('child', os.getpid(), random.random())\n"
PARENT = """\
import os, subprocess, sys
print("parent", os.getpid())
child = subprocess.run([sys.executable, "child.py"], capture_output=True, text=True)
print(child.stdout.strip())
"""


def test_children_never_overwrite_the_parents_recording(enabled: Venv, tmp_path: Path) -> None:
    write(tmp_path / "child.py", CHILD)
    write(tmp_path / "parent.py", PARENT)
    rec = enabled.run("parent.py", cwd=tmp_path, env={"RETRACE_RECORDING": "only.retrace"})
    assert rec.returncode == 0, rec.stderr
    assert sorted(p.name for p in tmp_path.glob("*.retrace")) == ["only.retrace"]
    info = json.loads(enabled.retrace("inspect", "only.retrace", "--json", cwd=tmp_path).stdout)
    assert info["program"] == ["parent.py"]


def test_pid_placeholder_records_every_process(enabled: Venv, tmp_path: Path) -> None:
    write(tmp_path / "child.py", CHILD)
    write(tmp_path / "parent.py", PARENT)
    rec = enabled.run("parent.py", cwd=tmp_path, env={"RETRACE_RECORDING": "rec-%p.retrace"})
    assert rec.returncode == 0, rec.stderr
    parent_pid = rec.stdout.split()[1]
    child_line = rec.stdout.splitlines()[1]
    child_pid = child_line.split()[1]
    names = sorted(p.name for p in tmp_path.glob("*.retrace"))
    assert names == sorted([f"rec-{parent_pid}.retrace", f"rec-{child_pid}.retrace"])
    rep = enabled.retrace("replay", f"rec-{child_pid}.retrace", cwd=tmp_path)
    assert (rep.returncode, rep.stdout.strip()) == (0, child_line)
    info = json.loads(
        enabled.retrace("inspect", f"rec-{parent_pid}.retrace", "--json", cwd=tmp_path).stdout
    )
    assert info["program"] == ["parent.py"]


def test_bad_value_and_unrecordable_processes(enabled: Venv, tmp_path: Path) -> None:
    bad = enabled.run("-c", "print('ran')", cwd=tmp_path, env={"RETRACE_RECORDING": "x-%q"})
    assert bad.returncode == exitcodes.USAGE
    assert "unknown placeholder '%q'" in bad.stderr
    assert "ran" not in bad.stdout
    stdin = enabled.run("-", cwd=tmp_path, env={"RETRACE_RECORDING": "s.retrace"}, input="print(5)")
    assert stdin.returncode == 0
    assert stdin.stdout == "5\n"
    assert "cannot be recorded: running without recording" in stdin.stderr
    assert not (tmp_path / "s.retrace").exists()
    # Retrace's own command is never recorded by the hook
    own = enabled.run(
        "-m", "retracesoftware", "hook-status", cwd=tmp_path, env={"RETRACE_RECORDING": "o"}
    )
    assert own.returncode == 0
    assert not (tmp_path / "o").exists()
    script = enabled.root / "bin" / "retrace"  # as pip writes the console script
    script.write_text(
        f"#!{enabled.python}\nimport sys\nfrom retracesoftware.__main__ import main\n"
        "if __name__ == '__main__':\n    sys.exit(main())\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    try:
        full = {k: v for k, v in os.environ.items() if not k.startswith(("RETRACE", "PYTHON"))}
        console = subprocess.run(
            [str(script), "hook-status"],
            cwd=tmp_path,
            env={**full, "RETRACE_RECORDING": "o"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        script.unlink()
    assert (console.returncode, console.stdout.strip()) == (0, f"hook enabled: {enabled.pth}")
    assert not (tmp_path / "o").exists()
    # a recording that cannot be written stops with the usual message
    cannot = enabled.run(
        "-c", "print(1)", cwd=tmp_path, env={"RETRACE_RECORDING": "no/such/dir/r.retrace"}
    )
    assert cannot.returncode == exitcodes.CANNOT_WRITE
    assert "cannot write the recording no/such/dir/r.retrace" in cannot.stderr


def test_stale_hook_after_uninstall_is_explained(enabled: Venv, tmp_path: Path) -> None:
    # as after `pip uninstall retracesoftware`: the package is gone from every directory the
    # hook file knows about
    dev = enabled.site / "zz_retrace_under_test.pth"
    dev.rename(dev.with_suffix(".off"))
    hook_text = enabled.pth.read_text(encoding="utf-8")
    enabled.pth.write_text(hook.pth_text(enabled.pth, tmp_path / "gone"), encoding="utf-8")
    try:
        quiet = enabled.run("-c", "print('ran')", cwd=tmp_path)
        loud = enabled.run("-c", "print('ran')", cwd=tmp_path, env={"RETRACE_RECORDING": "r"})
    finally:
        dev.with_suffix(".off").rename(dev)
        enabled.pth.write_text(hook_text, encoding="utf-8")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "ran\n", "")
    assert (loud.returncode, loud.stdout) == (0, "ran\n")
    assert "Retrace cannot be imported" in loud.stderr
    assert str(enabled.pth) in loud.stderr
    assert "Traceback" not in loud.stderr
    assert "Error processing" not in loud.stderr


# ------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "argv, options, program",
    [
        (["py", "app.py", "-x"], [], ["app.py", "-x"]),
        (["py", "-u", "-X", "dev", "app.py"], ["-u", "-X", "dev"], ["app.py"]),
        (["py", "-OWerror", "-m", "pkg.mod", "a"], ["-O", "-W", "error"], ["-m", "pkg.mod", "a"]),
        (["py", "-Bc", "print(1)", "-c"], ["-B"], ["-c", "print(1)", "-c"]),
        (["py", "-mmod"], [], ["-m", "mod"]),
        (
            ["py", "--check-hash-based-pycs", "always", "a.py"],
            ["--check-hash-based-pycs", "always"],
            ["a.py"],
        ),
        (["py", "--", "-weird.py"], [], ["-weird.py"]),
        (["py"], [], None),
        (["py", "-i"], ["-i"], None),
        (["py", "-", "arg"], [], None),
        (["py", "--version"], [], None),
        (["py", "-c"], [], None),
    ],
)
def test_parse_command_line(argv: list[str], options: list[str], program: list[str] | None) -> None:
    assert hook.parse_command_line(argv) == (options, program)


def test_expand_path() -> None:
    assert hook.expand_path("run-%p.retrace", 42) == "run-42.retrace"
    assert hook.expand_path("100%%-%p-%p", 7) == "100%-7-7"
    assert hook.expand_path("plain", 1) == "plain"
    for bad in ("a%", "a%d"):
        with pytest.raises(ValueError, match="unknown placeholder"):
            hook.expand_path(bad, 1)
