"""Subprocesses: children run when recording and never on replay (docs/capture-processes.md)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from retracesoftware import exitcodes

from .conftest import Run, write
from .test_record_replay import assert_same, record_and_replay

# A child that leaves a trace of every run: one line appended to runs.log per start.
CHILD = """\
import sys
with open(sys.argv[1], "a") as log:
    log.write("ran\\n")
mode = sys.argv[2]
if mode == "echo":
    sys.stdout.write(sys.stdin.read().upper())
    sys.stderr.write("to stderr\\n")
elif mode == "lines":
    for i in range(3):
        print("line", i, flush=True)
elif mode == "inherit":
    print("child says hi", flush=True)
    print("child warns", file=sys.stderr, flush=True)
sys.exit(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
"""


def _child(tmp_path: Path) -> tuple[Path, Path]:
    child = write(tmp_path / "child.py", CHILD)
    return child, tmp_path / "runs.log"


def _prelude(tmp_path: Path) -> str:
    child, log = _child(tmp_path)
    return (
        f"import os, subprocess, sys\nCHILD = [{sys.executable!r}, {str(child)!r}, {str(log)!r}]\n"
    )


def test_run_popen_and_errors_replay_without_starting_children(
    retrace: Run, tmp_path: Path
) -> None:
    source = _prelude(tmp_path) + textwrap.dedent(
        """\
        import time
        r = subprocess.run(CHILD + ["echo", "3"], input="abc", capture_output=True, text=True)
        print(type(r).__name__, r.returncode, repr(r.stdout), repr(r.stderr), r.args[-2:])
        print(subprocess.check_output(CHILD + ["echo"], input=b"xyz", stderr=subprocess.DEVNULL))
        print(subprocess.call(CHILD + ["none", "5"]), subprocess.check_call(CHILD + ["none"]))
        p = subprocess.Popen(CHILD + ["lines"], stdout=subprocess.PIPE, text=True)
        print(isinstance(p, subprocess.Popen), isinstance(p.pid, int), p.returncode)
        print(repr(p.stdout.readline()), repr(p.stdout.read()))
        print(p.wait(), p.poll(), p.returncode)
        with subprocess.Popen(CHILD + ["echo"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
            out, err = p.communicate(b"piped")
            print(out, err, p.returncode)
        p = subprocess.Popen(CHILD + ["none", "7"])
        while p.poll() is None:
            time.sleep(0.01)
        print("polled", p.returncode)
        try:
            subprocess.run(CHILD + ["none", "9"], check=True, capture_output=True)
        except subprocess.CalledProcessError as e:
            print("CalledProcessError", e.returncode, e.cmd[-2:], e.stdout, e.stderr)
        try:
            subprocess.run(["retrace-no-such-program-xyz", "arg"])
        except FileNotFoundError as e:
            print("FileNotFoundError", e.errno, e.filename)
        try:
            subprocess.run(["sleep", "10"], timeout=0.3)
        except subprocess.TimeoutExpired as e:
            print("TimeoutExpired", e.cmd[0], e.timeout)
        print(subprocess.getoutput("echo getoutput"), subprocess.getstatusoutput("exit 3"))
        p = subprocess.Popen(["sleep", "10"])
        p.terminate()
        print(p.wait(), repr(p).split(" args")[0])
        """
    )
    child, log = _child(tmp_path)

    def change() -> None:
        child.unlink()  # the executable is gone: replay must not need it

    rec, rep = record_and_replay(retrace, tmp_path, source, change=change)
    assert rec.returncode == 0, rec.stderr
    assert "\nTrue True None\n" in rec.stdout
    assert "CompletedProcess 3 'ABC' 'to stderr\\n'" in rec.stdout
    assert "CalledProcessError 9" in rec.stdout
    assert "FileNotFoundError 2 retrace-no-such-program-xyz" in rec.stdout
    assert "TimeoutExpired sleep" in rec.stdout
    runs = log.read_text()
    assert "<Popen: returncode: -15" in rec.stdout
    assert runs.count("ran") == 8
    assert_same(rec, rep)
    assert log.read_text() == runs  # no child ran on replay


def test_os_system_and_popen_replay_their_output(retrace: Run, tmp_path: Path) -> None:
    source = _prelude(tmp_path) + textwrap.dedent(
        """\
        import shlex
        cmd = " ".join(shlex.quote(a) for a in CHILD)
        print("before", flush=True)
        status = os.system(cmd + " inherit 3")
        print("status", status, os.waitstatus_to_exitcode(status), flush=True)
        p = subprocess.Popen(CHILD + ["inherit"])
        print("waited", p.wait(), flush=True)
        with os.popen(cmd + " lines") as f:
            print([line for line in f])
        f = os.popen(cmd + " lines 4")
        print(repr(f.read()), f.close())
        """
    )
    child, log = _child(tmp_path)

    def change() -> None:
        child.write_text("raise SystemExit('changed')\n")

    rec, rep = record_and_replay(retrace, tmp_path, source, change=change)
    assert rec.returncode == 0, rec.stderr
    # the children's own output to the inherited stdout/stderr is part of the run
    assert rec.stdout.count("child says hi") == 2
    assert rec.stderr.count("child warns") == 2
    assert "status 768 3" in rec.stdout
    assert "['line 0\\n', 'line 1\\n', 'line 2\\n']" in rec.stdout
    assert "1024" in rec.stdout  # os.popen(...).close() is the wait status
    runs = log.read_text()
    assert runs.count("ran") == 4
    assert_same(rec, rep)
    assert log.read_text() == runs


def test_changed_command_is_a_divergence(retrace: Run, tmp_path: Path) -> None:
    script = write(
        tmp_path / "prog.py",
        "import subprocess\nprint(subprocess.check_output(['echo', 'one']))\n",
    )
    rec = retrace("record", "-o", "run.retrace", "--", str(script))
    assert rec.returncode == 0, rec.stderr
    write(script, "import subprocess\nprint(subprocess.check_output(['echo', 'two']))\n")
    rep = retrace("replay", "run.retrace")
    assert rep.returncode == exitcodes.DIVERGED
    assert "subprocess.Popen" in rep.stderr
    assert "Traceback" not in rep.stderr
    assert "processes.py" not in rep.stderr  # the location is a caller, not Retrace's adapter


def test_inspect_lists_process_calls(retrace: Run, tmp_path: Path) -> None:
    write(tmp_path / "p.py", "import subprocess\nsubprocess.run(['true'])\n")
    assert retrace("record", "-o", "p.retrace", "--", "p.py").returncode == 0
    info = json.loads(retrace("inspect", "p.retrace", "--json").stdout)
    assert "subprocess.Popen" in info["calls_by_function"]


def test_tampered_result_is_a_malformed_divergence() -> None:
    import subprocess

    import pytest

    from retracesoftware.install.config import Config, ModuleConfig
    from retracesoftware.install.patching import install
    from retracesoftware.proxy import EventKind, MemoryReader, MemoryWriter, ReplayDivergence

    def program() -> int:
        try:
            return subprocess.run(["true"]).returncode
        except Exception:  # the divergence must survive the program catching it
            return -1

    original = subprocess.Popen
    config = Config(modules={"subprocess": ModuleConfig(adapters=["subprocess"])})
    with install(config) as inst:
        writer = MemoryWriter()
        assert inst.system.record(writer, program) == 0
        events = list(writer.events)
        assert inst.system.replay(MemoryReader(events), program) == 0
        calls = [i for i, e in enumerate(events) if e[0] == EventKind.CALL]
        key_at = {i: events[i][2] for i in calls}
        at = next(i for i in calls if key_at[i] == "subprocess.Popen.communicate")
        assert events[at + 1][0] == EventKind.RESULT
        events[at + 1] = (int(EventKind.RESULT), events[at + 1][1], ("not", "a result"))
        with pytest.raises(ReplayDivergence) as info:
            inst.system.replay(MemoryReader(events), program)
        assert info.value.kind == "malformed"
        assert "subprocess.Popen.communicate" in str(info.value)
    assert subprocess.Popen is original  # uninstalled
