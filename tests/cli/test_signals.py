"""Signals and atexit: handlers run at the same point on replay, with no real signal sent."""

from __future__ import annotations

import re
import textwrap
import types
from pathlib import Path

from .conftest import Run, write

SIGNALS = """
import os, signal, time
seen = []
def handler(signum, frame):
    seen.append(signum)
    print("handler", signal.Signals(signum).name, "clock", time.time(), "frame", frame is not None)
print("previous", signal.signal(signal.SIGUSR1, handler))
print("getsignal", signal.getsignal(signal.SIGUSR1) is handler)
print("start", time.time())
os.kill(os.getpid(), signal.SIGUSR1)          # delivered inside os.kill
print("after kill", seen)
signal.raise_signal(signal.SIGUSR1)
print("after raise_signal", seen)
signal.signal(signal.SIGALRM, handler)
print("alarm", signal.alarm(0))
signal.setitimer(signal.ITIMER_REAL, 0.02)
time.sleep(2)                                 # interrupted: the handler runs inside sleep
print("after sleep", seen, signal.getitimer(signal.ITIMER_REAL))
# The timer fires while pure Python code runs: the handler is delivered at the next
# crossing (a time.time() every 1000 iterations); where depends on the run's timing.
signal.setitimer(signal.ITIMER_REAL, 0.02)
n = 0
while len(seen) < 4:
    n += 1
    if n % 1000 == 0:
        time.time()
print("busy loop delivered at", n)
signal.signal(signal.SIGUSR1, signal.SIG_IGN)
os.kill(os.getpid(), signal.SIGUSR1)
print("ignored", seen, signal.getsignal(signal.SIGUSR1))
"""

INTERRUPTED = """
import os, signal, time
print("start", time.time())
try:
    os.kill(os.getpid(), signal.SIGINT)
except KeyboardInterrupt:
    print("caught KeyboardInterrupt", time.time())
os.kill(os.getpid(), signal.SIGINT)
print("not reached")
"""

ATEXIT = """
import atexit, sys, time
def first(tag):
    print("first handler", tag, time.time())
def failing():
    print("failing handler", time.time())
    raise ValueError("from an atexit handler")
def dropped():
    print("unregistered: never printed")
atexit.register(first, "with an argument")
atexit.register(failing)
atexit.register(dropped)
atexit.unregister(dropped)
@atexit.register
def last():
    print("last registered runs first", time.time())
print("main done", time.time())
sys.exit(int(sys.argv[1]))
"""


def _record(retrace: Run, tmp_path: Path, source: str, *args: str):
    script = write(tmp_path / "prog.py", textwrap.dedent(source))
    return retrace("record", "-o", "run.retrace", "--", str(script), *args)


def _masked(text: str) -> str:
    """Object addresses (``<function f at 0x...>``) differ between any two runs."""
    return re.sub(r"0x[0-9a-f]+", "0x?", text)


def _same(retrace: Run, rec, times: int = 2) -> None:
    for _ in range(times):
        rep = retrace("replay", "run.retrace")
        assert (rep.stdout, _masked(rep.stderr), rep.returncode) == (
            rec.stdout,
            _masked(rec.stderr),
            rec.returncode,
        )


def test_handlers_run_at_the_recorded_crossings(retrace: Run, tmp_path: Path) -> None:
    rec = _record(retrace, tmp_path, SIGNALS)
    assert rec.returncode == 0, rec.stderr
    out = rec.stdout
    assert "after kill [10]" in out and "after raise_signal [10, 10]" in out
    assert "after sleep [10, 10, 14]" in out and "busy loop delivered at" in out
    assert out.count("handler SIG") == 4 and "ignored [10, 10, 14, 14]" in out
    _same(retrace, rec, times=3)


def test_keyboard_interrupt_replays(retrace: Run, tmp_path: Path) -> None:
    rec = _record(retrace, tmp_path, INTERRUPTED)
    assert rec.returncode == 130
    assert "caught KeyboardInterrupt" in rec.stdout and "not reached" not in rec.stdout
    assert rec.stderr.splitlines()[-1] == "KeyboardInterrupt"
    assert "retracesoftware" not in rec.stderr  # no engine frames in the traceback
    _same(retrace, rec)


def test_atexit_handlers_are_recorded(retrace: Run, tmp_path: Path) -> None:
    for status in ("0", "3"):
        rec = _record(retrace, tmp_path, ATEXIT, status)
        assert rec.returncode == int(status), rec.stderr
        lines = rec.stdout.splitlines()
        assert [line.split(" ")[0] for line in lines] == ["main", "last", "failing", "first"]
        assert "unregistered" not in rec.stdout
        assert "Exception ignored in atexit callback" in rec.stderr
        assert "ValueError: from an atexit handler" in rec.stderr
        _same(retrace, rec, times=1)


def test_engine_delivers_deferred_callbacks_inside_the_next_crossing() -> None:
    """The engine support the signals adapter uses: System.callback and System.defer."""
    from retracesoftware.proxy import MemoryWriter, Mode, System
    from retracesoftware.proxy.protocol import EventKind

    real_calls: list[int] = []
    clock = types.SimpleNamespace(now=lambda: real_calls.append(1) or 1.5)
    seen: list[tuple[str, int]] = []
    with System() as system:
        system.patch_function(clock, "now", key="clock.now")
        deliver = system.callback(lambda why: seen.append((why, len(seen))))

        def program() -> list[object]:
            out: list[object] = [clock.now()]
            if system.mode is Mode.RECORD:
                system.defer(lambda: deliver("signal"))  # as a signal arriving here
            out.append(len(seen))  # not delivered yet: no crossing since
            out.append(clock.now())  # delivered inside this crossing
            out.append(len(seen))
            return out

        writer = MemoryWriter()
        recorded = system.record(writer, program)
        assert recorded == [1.5, 0, 1.5, 1] and seen == [("signal", 0)]
        kinds = [event[0] for event in writer.events]
        assert kinds[:5] == [
            EventKind.CALL,
            EventKind.RESULT,
            EventKind.CALL,
            EventKind.CALLBACK,
            EventKind.CALLBACK_RETURN,
        ]
        seen.clear()
        assert system.replay(writer.reader(), program) == recorded
        assert seen == [("signal", 0)] and len(real_calls) == 2  # replay: no real call
