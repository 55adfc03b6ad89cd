"""A writer killed with SIGKILL leaves a readable prefix and a *truncated* error, nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from retracesoftware import stream

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

BUSY_CHILD = r"""
import sys
from retracesoftware import stream
w = stream.Writer(sys.argv[1], flush_interval=0.01, frame_size=int(sys.argv[2]))
for i in range(50_000_000):
    w.write((i, "x" * (i % 97), float(i)) if i % 3 else i)
    if i == 2000:
        print("go", flush=True)
"""

IDLE_CHILD = r"""
import sys, time
from retracesoftware import stream
w = stream.Writer(sys.argv[1], flush_interval=0.05)
for i in range(int(sys.argv[2])):
    w.write(i)
print("done", flush=True)
if sys.argv[3] == "sleep":
    time.sleep(600)
else:  # keep the GIL busy in pure Python: the flusher must not need it
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        pass
"""


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True
    )


def read_all(path: Path) -> tuple[list[Any], BaseException | None]:
    out: list[Any] = []
    try:
        with stream.Reader(path) as r:
            out.extend(r)
    except stream.StreamError as exc:
        return out, exc
    return out, None


def expected(i: int) -> Any:
    return (i, "x" * (i % 97), float(i)) if i % 3 else i


@pytest.mark.parametrize(("frame_size", "delay"), [(65536, 0.05), (1024, 0.2), (200, 0.1)])
def test_sigkill_mid_stream(tmp_path: Path, frame_size: int, delay: float) -> None:
    path = tmp_path / "killed.retrace"
    child = spawn(BUSY_CHILD, str(path), str(frame_size))
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "go"
        time.sleep(delay)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stdout:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    out, err = read_all(path)
    assert isinstance(err, stream.TruncatedError), err
    assert "interrupted" in str(err) and str(path) in str(err)
    assert out == [expected(i) for i in range(len(out))]


@pytest.mark.parametrize("then", ["sleep", "spin"])
def test_sigkill_after_idle_loses_nothing(tmp_path: Path, then: str) -> None:
    path = tmp_path / "idle.retrace"
    n = 5000
    child = spawn(IDLE_CHILD, str(path), str(n), then)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "done"
        # The writer is idle from now on: its background flusher alone must make every event
        # visible in the file.  Poll (generously bounded) instead of assuming a duration.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            out, _ = read_all(path)
            if len(out) == n:
                break
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stdout:
            child.stdout.close()
    out, err = read_all(path)
    assert out == list(range(n))
    assert isinstance(err, stream.TruncatedError)
    assert os.path.getsize(path) > 0
