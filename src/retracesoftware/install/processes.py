"""Subprocesses as crossings: replay never starts a child.

The ``subprocess`` adapter replaces ``subprocess.Popen`` by :class:`RecordedPopen`, a subclass
whose constructor and methods go through the crossings of :data:`calls`: when recording, a
real child is started (a real :class:`subprocess.Popen` held behind a proxy) and every answer
(pid, pipe objects, ``communicate`` output, exit status, errors) is recorded; on replay the
recorded answers are returned and nothing is started.  ``subprocess.run``, ``call``,
``check_call``, ``check_output``, ``getoutput`` and ``os.popen`` are written in terms of
``Popen`` and so replay through it, with their real result and exception types.
``os.system`` is replaced the same way.

Output a child writes to an *inherited* standard output or error (``stdout=None``,
``os.system``) does not pass through the program.  When that descriptor is not a terminal,
the recorded child writes it into a pipe that a thread copies to the real descriptor (so the
recorded run's output is unchanged) and keeps; the copy is part of the recording and replay
writes it to the same descriptor when the program learns that the child has finished
(``wait``, ``poll``, ``communicate``, leaving ``with``, ``os.system`` returning).  Output to a
terminal is not captured.
"""

from __future__ import annotations

import _thread
import os
import subprocess
import types

from retracesoftware.proxy import EngineError, Mode
from retracesoftware.utils import GateState

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from .patching import Installation

__all__ = ["RecordedPopen", "calls", "install"]

_ORIGINAL_POPEN = subprocess.Popen
_SIGNATURE: Any = None  # inspect.Signature of Popen, made on first use (inspect is slow to import)
_OUTSIDE = int(GateState.OUTSIDE)
_os_write = os.write  # the real functions, captured before any patching
_os_read = os.read
_os_close = os.close
_os_system = os.system
_JOIN_TIMEOUT = 2.0  # seconds to wait for a finished child's copied output to drain

#: The System of the current installation (the crossings' targets ask whether they record).
_SYSTEMS: list[Any] = []


def _recording() -> bool:
    """True inside the target of a crossing that is being recorded."""
    return bool(_SYSTEMS) and _SYSTEMS[-1].gate.get() == _OUTSIDE


def _replaying() -> bool:
    return bool(_SYSTEMS) and _SYSTEMS[-1].mode == Mode.REPLAY


def _checked(value: Any, key: str, types_: tuple[tuple[type, ...], ...]) -> tuple[Any, ...]:
    """*value* if it is a tuple of items of *types_*; else a ``malformed`` divergence.

    Only a damaged recording can give a crossing of this module a result of another form.
    """
    if (
        type(value) is tuple
        and len(value) == len(types_)
        and all(t == () or isinstance(v, t) for v, t in zip(value, types_, strict=True))
    ):
        return value
    expected = f"a result of {key} with {len(types_)} items"
    actual = f"got {type(value).__name__} {str(value)[:60]}"
    system = _SYSTEMS[-1] if _SYSTEMS else None
    if system is not None and system.mode == Mode.REPLAY:
        system._diverge(system.gate.tag, "malformed", expected, actual)
    raise EngineError(f"{key}: expected {expected}, {actual}")


_RC = (int, type(None))
_OUTCOME = (_RC, (bytes,), (bytes,))


class _Tee:
    """Copies a pipe to a real descriptor on a thread and keeps what it copied.

    The thread is a bare ``_thread`` thread, so it never appears in ``threading.enumerate()``.
    """

    def __init__(self, read_fd: int, target_fd: int) -> None:
        self.target_fd = target_fd
        self._read_fd = read_fd
        self._chunks: list[bytes] = []
        self._reported = 0
        self._lock = _thread.allocate_lock()
        self._running = _thread.allocate_lock()
        self._running.acquire()
        try:
            _thread.start_new_thread(self._pump, ())
        except BaseException:
            self._running.release()
            _os_close(read_fd)
            raise

    def _pump(self) -> None:
        try:
            while True:
                chunk = _os_read(self._read_fd, 65536)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[_os_write(self.target_fd, view) :]
                with self._lock:
                    self._chunks.append(chunk)
        except OSError:
            pass
        finally:
            _os_close(self._read_fd)
            self._running.release()

    def take(self, finished: bool) -> bytes:
        """Copied output not reported yet (waits for the pipe to drain if *finished*)."""
        if finished and self._running.acquire(timeout=_JOIN_TIMEOUT):
            self._running.release()
        with self._lock:
            data = b"".join(self._chunks[self._reported :])
            self._reported = len(self._chunks)
        return data


def _tee_for(target_fd: int) -> tuple[int, _Tee] | None:
    """A pipe whose write end the child gets instead of inherited *target_fd*."""
    try:
        if os.isatty(target_fd):
            return None
        os.fstat(target_fd)
    except OSError:
        return None
    read_fd, write_fd = os.pipe()
    return write_fd, _Tee(read_fd, target_fd)


class _Child:
    """The real child behind a recorded :class:`RecordedPopen` (record side only)."""

    def __init__(self, popen: subprocess.Popen[Any], tees: tuple[_Tee | None, ...]) -> None:
        self.popen = popen
        self.tees = tees

    def outcome(self) -> tuple[int | None, bytes, bytes]:
        """(returncode, copied stdout, copied stderr) as seen now."""
        rc = self.popen.returncode
        finished = rc is not None
        out, err = (t.take(finished) if t is not None else b"" for t in self.tees)
        return rc, out, err


def _bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``Popen``'s arguments bound to its parameters (an ``inspect.BoundArguments``)."""
    global _SIGNATURE
    if _SIGNATURE is None:
        import inspect

        _SIGNATURE = inspect.signature(_ORIGINAL_POPEN)
    return _SIGNATURE.bind(*args, **kwargs)


def _spawn(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
    bound = _bind(args, kwargs)
    params = bound.arguments
    tees: list[_Tee | None] = [None, None]
    ends: list[int] = []
    if _recording():
        for index, (name, fd) in enumerate((("stdout", 1), ("stderr", 2))):
            if params.get(name) is None:
                made = _tee_for(fd)
                if made is not None:
                    params[name] = made[0]
                    ends.append(made[0])
                    tees[index] = made[1]
    try:
        popen = _ORIGINAL_POPEN(*bound.args, **bound.kwargs)
    except BaseException:
        for tee in tees:
            if tee is not None:
                tee.take(False)
        raise
    finally:
        for fd in ends:
            _os_close(fd)
    child = _Child(popen, (tees[0], tees[1]))
    return child, popen.pid, popen.stdin, popen.stdout, popen.stderr


def _communicate(child: _Child, input: Any = None, timeout: float | None = None) -> tuple:
    out, err = child.popen.communicate(input, timeout)
    return (out, err, *child.outcome())


def _wait(child: _Child, timeout: float | None = None) -> tuple:
    child.popen.wait(timeout)
    return child.outcome()


def _poll(child: _Child) -> tuple:
    child.popen.poll()
    return child.outcome()


def _send_signal(child: _Child, sig: int) -> None:
    child.popen.send_signal(sig)


def _terminate(child: _Child) -> None:
    child.popen.terminate()


def _kill(child: _Child) -> None:
    child.popen.kill()


def _exit(child: _Child) -> tuple:
    child.popen.__exit__(None, None, None)
    return child.outcome()


def _system(command: Any) -> tuple[int, bytes, bytes]:
    """Run *command* like ``os.system``; (wait status, copied stdout, copied stderr)."""
    if not _recording():
        return _os_system(command), b"", b""
    made = [_tee_for(1), _tee_for(2)]
    if made == [None, None]:
        return _os_system(command), b"", b""
    try:
        popen = _ORIGINAL_POPEN(
            command,
            shell=True,
            stdout=made[0][0] if made[0] else None,
            stderr=made[1][0] if made[1] else None,
        )
    finally:
        for m in made:
            if m is not None:
                _os_close(m[0])
    child = _Child(popen, tuple(m[1] if m else None for m in made))
    try:
        popen.wait()
    except KeyboardInterrupt:
        popen.kill()
        popen.wait()
        raise
    rc, out, err = child.outcome()
    assert rc is not None
    status = rc << 8 if rc >= 0 else -rc
    return status, out, err


#: The functions the adapter patches as crossings (key: ``subprocess.Popen.<name>``).
calls = types.SimpleNamespace(
    spawn=_spawn,
    communicate=_communicate,
    wait=_wait,
    poll=_poll,
    send_signal=_send_signal,
    terminate=_terminate,
    kill=_kill,
    exit=_exit,
    system=_system,
)

_KEYS = {
    "spawn": "subprocess.Popen",
    "communicate": "subprocess.Popen.communicate",
    "wait": "subprocess.Popen.wait",
    "poll": "subprocess.Popen.poll",
    "send_signal": "subprocess.Popen.send_signal",
    "terminate": "subprocess.Popen.terminate",
    "kill": "subprocess.Popen.kill",
    "exit": "subprocess.Popen.__exit__",
    "system": "os.system",
}


def _emit(out: Any, err: Any) -> None:
    """On replay, write what the recorded child wrote to the inherited stdout/stderr."""
    if not _replaying():
        return
    for fd, data in ((1, out), (2, err)):
        if isinstance(data, bytes) and data:
            view = memoryview(data)
            while view:
                view = view[_os_write(fd, view) :]


class RecordedPopen(_ORIGINAL_POPEN):  # type: ignore[misc,valid-type]
    """``subprocess.Popen`` while Retrace is installed: a child recorded, or replayed."""

    _child_created = False  # Popen.__del__ has nothing to reap: the real object does that

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        bound = _bind(args, kwargs)
        params = bound.arguments
        self.args = params["args"]
        self.returncode = None
        self.encoding = params.get("encoding")
        self.errors = params.get("errors")
        self.pipesize = params.get("pipesize", -1)
        self.universal_newlines = params.get("universal_newlines")
        text = params.get("text")
        self.text_mode = bool(self.encoding or self.errors or text or self.universal_newlines)
        self._input = None
        self._communication_started = False
        self._child = None
        self.pid = None
        self.stdin = self.stdout = self.stderr = None
        result = _checked(calls.spawn(*args, **kwargs), "subprocess.Popen", ((), _RC, (), (), ()))
        self._child, self.pid, self.stdin, self.stdout, self.stderr = result

    def _update(self, outcome: Any, key: str) -> Any:
        rc, out, err = _checked(outcome, key, _OUTCOME)
        if rc is not None:
            self.returncode = rc
        _emit(out, err)
        return rc

    def communicate(self, input: Any = None, timeout: float | None = None) -> tuple[Any, Any]:
        result = _checked(
            calls.communicate(self._child, input, timeout),
            "subprocess.Popen.communicate",
            ((), (), *_OUTCOME),
        )
        self._update(result[2:], "subprocess.Popen.communicate")
        return result[0], result[1]

    def wait(self, timeout: float | None = None) -> int:
        return self._update(calls.wait(self._child, timeout), "subprocess.Popen.wait")

    def poll(self) -> int | None:
        return self._update(calls.poll(self._child), "subprocess.Popen.poll")

    def send_signal(self, sig: int) -> None:
        calls.send_signal(self._child, sig)

    def terminate(self) -> None:
        calls.terminate(self._child)

    def kill(self) -> None:
        calls.kill(self._child)

    def __enter__(self) -> RecordedPopen:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._child is not None:
            self._update(calls.exit(self._child), "subprocess.Popen.__exit__")


# Same repr as the real class: "<Popen: returncode: 0 args: [...]>".
RecordedPopen.__name__ = RecordedPopen.__qualname__ = "Popen"


def system(command: Any) -> int:
    """``os.system`` while Retrace is installed."""
    status, out, err = _checked(calls.system(command), "os.system", ((int,), (bytes,), (bytes,)))
    _emit(out, err)
    return status


system.__doc__ = _os_system.__doc__


def install(inst: Installation) -> None:
    """The ``subprocess`` adapter: patch ``subprocess.Popen`` and ``os.system``."""
    for name, key in _KEYS.items():
        inst.system.patch_function(calls, name, key=key)
        inst.patched.append(key)
    _SYSTEMS.append(inst.system)
    inst._finalizers.append(_SYSTEMS.pop)
    inst._set_module(subprocess, "Popen", RecordedPopen)
    inst._set_module(os, "system", system)
