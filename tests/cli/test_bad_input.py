"""Every bad input gets one clear message (no traceback) and its own exit code."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from retracesoftware import exitcodes, stream

from .conftest import Run, write


def assert_clean_failure(out: subprocess.CompletedProcess[str], code: int, phrase: str) -> None:
    assert out.returncode == code, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    assert phrase in out.stderr
    assert [line.startswith("retrace: ") for line in out.stderr.splitlines()].count(True) == 1


@pytest.fixture
def good(retrace: Run, tmp_path: Path) -> Path:
    script = write(tmp_path / "p.py", "import time\nfor _ in range(50): print(time.time())\n")
    assert retrace("record", "-o", "good.retrace", "--", str(script)).returncode == 0
    return tmp_path / "good.retrace"


@pytest.mark.parametrize("command", ["replay", "inspect"])
def test_missing_file(retrace: Run, command: str) -> None:
    out = retrace(command, "nope.retrace")
    assert_clean_failure(out, exitcodes.NOT_FOUND, "no such recording: nope.retrace")


@pytest.mark.parametrize("command", ["replay", "inspect"])
@pytest.mark.parametrize("content", [b"", b"hello world\n", b"\x89PNG\r\n\x1a\n" + bytes(100)])
def test_foreign_file(retrace: Run, tmp_path: Path, command: str, content: bytes) -> None:
    (tmp_path / "f.retrace").write_bytes(content)
    out = retrace(command, "f.retrace")
    assert_clean_failure(out, exitcodes.NOT_A_RECORDING, "not a Retrace recording")


@pytest.mark.parametrize("command", ["replay", "inspect"])
def test_stream_file_that_is_not_a_program(retrace: Run, tmp_path: Path, command: str) -> None:
    with stream.Writer(tmp_path / "s.retrace") as w:
        w.write(1)
    out = retrace(command, "s.retrace")
    assert_clean_failure(out, exitcodes.NOT_A_RECORDING, "not a recorded program")


@pytest.mark.parametrize("command", ["replay", "inspect"])
def test_corrupt_file(retrace: Run, good: Path, command: str) -> None:
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0xFF
    good.write_bytes(bytes(data))
    out = retrace(command, str(good))
    assert_clean_failure(out, exitcodes.CORRUPT, "the recording is corrupt")


@pytest.mark.parametrize("command", ["replay", "inspect"])
def test_unsupported_format_version(retrace: Run, good: Path, command: str) -> None:
    data = bytearray(good.read_bytes())
    data[8:10] = (99).to_bytes(2, "little")
    good.write_bytes(bytes(data))
    out = retrace(command, str(good))
    assert_clean_failure(out, exitcodes.INCOMPATIBLE, "unsupported recording format")


def test_truncated_file_replays_up_to_the_cut(retrace: Run, good: Path) -> None:
    full = retrace("replay", str(good))
    assert full.returncode == 0
    data = good.read_bytes()
    good.write_bytes(data[: len(data) - 40])  # lose the trailer and the last frame's end
    out = retrace("replay", str(good))
    assert_clean_failure(out, exitcodes.TRUNCATED, "the recording is truncated")
    ins = retrace("inspect", str(good))
    assert_clean_failure(ins, exitcodes.TRUNCATED, "the recording is truncated")
    assert "complete:    no" in ins.stdout


def test_killed_program_replays_up_to_the_cut(retrace: Run, tmp_path: Path) -> None:
    script = write(
        tmp_path / "loop.py",
        "import sys, time\n"
        "n = 0\n"
        "while True:\n"
        "    n += 1\n"
        "    print(n, time.time(), flush=True)\n"
        "    time.sleep(0.02)\n",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "retracesoftware", "record", "-o", "k.retrace", "--", str(script)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(10)]
    time.sleep(1.0)  # well over drain + flush intervals (0.15 s): those events are on disk
    proc.kill()
    rest = proc.communicate()[0]
    recorded = "".join(lines) + rest
    out = retrace("replay", "k.retrace")
    assert_clean_failure(out, exitcodes.TRUNCATED, "replay reproduced the run up to the cut")
    assert len(out.stdout.splitlines()) >= 10
    assert recorded.startswith(out.stdout)


def test_incompatible_python(retrace: Run, good: Path, tmp_path: Path) -> None:
    # rewrite the Python version in the header through the public stream API
    src = stream.Reader(good)
    header = src.header
    events = list(src.events())
    src.close()
    from retracesoftware.install import engine_types

    probe = write(
        tmp_path / "rewrite.py",
        "import platform, sys\n"
        "platform.python_version = lambda: '3.99.0'\n"
        "from retracesoftware import stream\n"
        "from retracesoftware.install import engine_types\n"
        "import ast\n"
        "extra = ast.literal_eval(sys.argv[2])\n"
        "events = ast.literal_eval(sys.argv[3])\n"
        "with stream.Writer(sys.argv[1], metadata=extra, types=engine_types()) as w:\n"
        "    for thread, value in events: w.write(value, thread=thread)\n",
    )
    del engine_types
    from retracesoftware.proxy import ErrorValue, Handle, Loan

    plain = [(t, v) for t, v in events if not isinstance(v, (ErrorValue, Handle, Loan))]
    subprocess.run(
        [sys.executable, str(probe), str(tmp_path / "py.retrace"), repr(header.extra), repr(plain)],
        check=True,
        cwd=tmp_path,
    )
    out = retrace("replay", "py.retrace")
    assert_clean_failure(out, exitcodes.INCOMPATIBLE, "3.99.0")


def test_divergence_has_its_own_exit_code(retrace: Run, tmp_path: Path) -> None:
    script = write(tmp_path / "d.py", "import time\nprint(time.time())\n")
    assert retrace("record", "-o", "d.retrace", "--", str(script)).returncode == 0
    script.write_text("import os\nprint(os.getpid())\n", encoding="utf-8")  # the code changed
    out = retrace("replay", "d.retrace")
    assert_clean_failure(out, exitcodes.DIVERGED, "replay diverged")
    assert "os.getpid" in out.stderr and "time.time" in out.stderr


def test_program_not_found(retrace: Run, tmp_path: Path) -> None:
    out = retrace("record", "-o", "x.retrace", "--", "missing.py")
    assert_clean_failure(out, exitcodes.PROGRAM_NOT_FOUND, "cannot find the program")
    assert not (tmp_path / "x.retrace").exists()
    out = retrace("record", "-o", "x.retrace", "--", "-m", "no_such_module_xyz")
    assert_clean_failure(out, exitcodes.PROGRAM_NOT_FOUND, "no module named")


def test_replay_when_the_program_is_gone(retrace: Run, good: Path, tmp_path: Path) -> None:
    (tmp_path / "p.py").unlink()
    out = retrace("replay", str(good))
    assert_clean_failure(out, exitcodes.PROGRAM_NOT_FOUND, "cannot find the program")


def test_cannot_write_recording(retrace: Run, tmp_path: Path) -> None:
    script = write(tmp_path / "p.py", "print(1)\n")
    out = retrace("record", "-o", str(tmp_path / "no" / "dir" / "r.retrace"), "--", str(script))
    assert_clean_failure(out, exitcodes.CANNOT_WRITE, "cannot write the recording")


def test_invalid_config(retrace: Run, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    write(conf / "mine.toml", '[modules.time]\nfuntions = ["time"]\n')
    script = write(tmp_path / "p.py", "print(1)\n")
    out = retrace("record", "--config", str(conf), "-o", "r.retrace", "--", str(script))
    assert_clean_failure(out, exitcodes.CONFIG_ERROR, "invalid configuration")
    assert "mine.toml" in out.stderr and "[modules.time]" in out.stderr
    assert "'funtions'" in out.stderr
    # a name the module lacks is found when patching; still no recording is left behind
    write(conf / "mine.toml", '[modules.time]\nfunctions = ["no_such_clock"]\n')
    out = retrace("record", "--config", str(conf), "-o", "r.retrace", "--", str(script))
    assert_clean_failure(out, exitcodes.CONFIG_ERROR, "no_such_clock")
    assert "mine.toml: [modules.time]" in out.stderr
    assert not (tmp_path / "r.retrace").exists()


@pytest.mark.parametrize(
    "args, phrase",
    [
        ([], "no command given"),
        (["record"], "record needs a program"),
        (["record", "-o", "x", "--"], "record needs a program"),
        (["--recording", "x"], "needs a program after `--`"),
        (["replay"], "the following arguments are required: FILE"),
        (["replay", "x", "--", "p.py"], "takes no program"),
        (["record", "--", "-x"], "unknown program option"),
    ],
)
def test_usage_errors(retrace: Run, args: list[str], phrase: str) -> None:
    out = retrace(*args)
    assert out.returncode == exitcodes.USAGE
    assert phrase in out.stderr
    assert "Traceback" not in out.stderr


def test_exit_codes_are_distinct() -> None:
    values = list(exitcodes.ALL.values())
    assert len(values) == len(set(values))
    assert all(v == 0 or v == 2 or v > 200 for v in values)


CLI_MESSAGES = [
    "no such recording",
    "cannot read the recording",
    "not a Retrace recording",
    "not a recorded program",
    "the recording is corrupt",
    "the recording is truncated",
    "unsupported recording format",
    "incompatible recording",
    "invalid configuration",
    "cannot write the recording",
    "internal error",
    "record needs a program",
    "needs a program after",
    "takes no program",
    "no command given",
]
INSTALL_MESSAGES = [
    "cannot find the program",
    "no module named",
    "reproduced the run up to the cut",
    "different patch configuration",
    "replay it with",
]


def test_every_message_is_in_troubleshooting() -> None:
    root = Path(__file__).resolve().parents[2]
    page = (root / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    src = root / "src" / "retracesoftware"
    cli = (src / "cli.py").read_text(encoding="utf-8") + (src / "__main__.py").read_text(
        encoding="utf-8"
    )
    install = "".join(p.read_text(encoding="utf-8") for p in (src / "install").glob("*.py"))
    for phrase in CLI_MESSAGES:
        assert phrase in cli, f"{phrase!r} is no longer printed by the CLI"
        assert phrase in page, f"docs/troubleshooting.md does not explain {phrase!r}"
    for phrase in INSTALL_MESSAGES:
        assert phrase in install, f"{phrase!r} is no longer raised by the install layer"
        assert phrase in page, f"docs/troubleshooting.md does not explain {phrase!r}"
    for name, value in exitcodes.ALL.items():
        assert f"| {value} | `{name}` |" in page, f"exit status {name} is not documented"


def test_inspect_into_a_closed_pipe_stops_quietly(retrace: Run, tmp_path: Path) -> None:
    script = tmp_path / "prog.py"
    script.write_text("print('hi')\n")
    assert retrace("record", "-o", "run.retrace", "--", str(script)).returncode == 0
    # The reader closes the pipe at once (like `| head -0`): no traceback, SIGPIPE's status.
    proc = subprocess.Popen(
        [sys.executable, "-m", "retracesoftware", "inspect", "--json", "run.retrace"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err
