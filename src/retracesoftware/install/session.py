"""Record and replay a whole program (script, ``-m module`` or ``-c code``) to a file.

:func:`record` runs the program in the sandbox, writing a recording; :func:`replay` runs it
again against the recording in the recorded working directory and environment.  Both return a
:class:`Outcome` (exit status and, for an uncaught exception, the exception to print).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import runpy
import sys
import threading
import types
from collections.abc import Sequence
from time import perf_counter as _perf_counter

from retracesoftware import __version__
from retracesoftware.proxy import ReplayDivergence
from retracesoftware.utils import probes
from retracesoftware.utils._plain import FrozenRecord, Record

from .adapter import RecordingReader, stream_reader, stream_writer
from .config import config_dirs as _config_dirs
from .config import load_config
from .environment import restore_environment, snapshot_environment
from .errors import (
    IncompatibleRecordingError,
    MalformedRecordingError,
    ProgramNotFoundError,
)
from .lifecycle import run_exit_handlers
from .patching import install

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    import traceback
    from typing import Any

__all__ = [
    "Outcome",
    "Program",
    "TruncatedReplayError",
    "read_metadata",
    "record",
    "replay",
]

METADATA_SCHEMA = 1
EXIT_RECORD = "retrace.exit"
_INTERNAL = (
    os.path.dirname(os.path.dirname(os.path.realpath(__file__))) + os.sep,
    os.path.dirname(runpy.__file__) + os.sep + "runpy.py",
    "<frozen runpy>",
)


class TruncatedReplayError(Exception):
    """Replay reached the end of a truncated recording (the recorded program was killed)."""

    def __init__(self, events: int, cause: ReplayDivergence | None = None) -> None:
        self.events = events
        self.cause = cause
        super().__init__(
            f"the recording is truncated (the recorded program was interrupted): replay "
            f"reproduced the run up to the cut, after {events} events"
        )


class Program(FrozenRecord):
    """What to run: ``kind`` is ``"script"``, ``"module"`` or ``"code"`` (immutable)."""

    __slots__ = _FIELDS = ("kind", "target", "args")
    kind: str
    target: str
    args: tuple[str, ...]

    def __init__(self, kind: str, target: str, args: tuple[str, ...] = ()) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "args", args)

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> Program:
        """Parse ``script.py ARGS``, ``-m module ARGS`` or ``-c code ARGS``."""
        argv = list(argv)
        if not argv:
            raise ValueError("no program given (expected script.py, -m module or -c code)")
        if argv[0] in ("-m", "-c"):
            if len(argv) < 2:
                raise ValueError(f"{argv[0]} needs an argument")
            kind = "module" if argv[0] == "-m" else "code"
            return cls(kind, argv[1], tuple(argv[2:]))
        if argv[0].startswith("-"):
            raise ValueError(f"unknown program option {argv[0]!r} (expected -m or -c)")
        return cls("script", argv[0], tuple(argv[1:]))

    @classmethod
    def from_data(cls, data: Any) -> Program:
        if (
            not isinstance(data, dict)
            or data.get("kind") not in ("script", "module", "code")
            or not isinstance(data.get("target"), str)
            or not isinstance(data.get("args"), list)
            or not all(isinstance(a, str) for a in data["args"])
        ):
            raise MalformedRecordingError("the recording does not describe a program")
        return cls(data["kind"], data["target"], tuple(data["args"]))

    def as_data(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "args": list(self.args)}

    @property
    def argv(self) -> list[str]:
        """The command line as the user would type it after ``python``."""
        if self.kind == "script":
            return [self.target, *self.args]
        return ["-m" if self.kind == "module" else "-c", self.target, *self.args]

    def check(self) -> None:
        """Raise :class:`ProgramNotFoundError` if the script or module does not exist."""
        if self.kind == "script" and not os.path.isfile(self.target):
            raise ProgramNotFoundError(f"cannot find the program {self.target!r}")
        if self.kind == "module":
            top = self.target.split(".")[0]
            if not all(p.isidentifier() for p in self.target.split(".")):
                raise ProgramNotFoundError(f"{self.target!r} is not a module name")
            saved = sys.path[0] if sys.path else None
            if sys.path:
                sys.path[0] = os.getcwd()
            try:
                found = importlib.util.find_spec(top) is not None
            finally:
                if saved is not None:
                    sys.path[0] = saved
            if not found:
                raise ProgramNotFoundError(f"no module named {top!r}")

    def run(self) -> None:
        """Run the program in this interpreter, as ``python ARGV`` would."""
        if self.kind == "script":
            sys.argv = [self.target, *self.args]
            sys.path[0] = os.path.dirname(os.path.abspath(self.target))
            runpy.run_path(self.target, run_name="__main__")
        elif self.kind == "module":
            sys.argv = [self.target, *self.args]
            sys.path[0] = os.getcwd()
            runpy.run_module(self.target, run_name="__main__", alter_sys=True)
        else:
            sys.argv = ["-c", *self.args]
            sys.path[0] = ""
            main = types.ModuleType("__main__")
            saved = sys.modules.get("__main__")
            sys.modules["__main__"] = main
            try:
                exec(compile(self.target, "<string>", "exec"), main.__dict__)
            finally:
                if saved is not None:
                    sys.modules["__main__"] = saved


class Outcome(Record):
    """How the program ended: its exit ``status``, the ``message`` a ``sys.exit("text")``
    printed, or the uncaught ``exception`` whose traceback Python would print."""

    __slots__ = _FIELDS = ("status", "message", "exception", "reported")

    def __init__(
        self,
        status: int,
        message: str | None = None,
        exception: BaseException | None = None,
        reported: bool = False,  # already printed (before the program's atexit handlers)
    ) -> None:
        self.status = status
        self.message = message
        self.exception = exception
        self.reported = reported

    def report(self) -> None:
        """Print what Python prints at exit (traceback or ``sys.exit`` message) to stderr."""
        if self.reported:
            return
        sys.stdout.flush()
        if self.exception is not None:
            import traceback  # only for an uncaught exception (slow to import)

            exc = self.exception
            shown = traceback.TracebackException(type(exc), exc, exc.__traceback__)
            _hide_internal(shown)
            print("".join(shown.format()), end="", file=sys.stderr)
        elif self.message is not None:
            print(self.message, file=sys.stderr)
        sys.stderr.flush()


def _hide_internal(shown: traceback.TracebackException, depth: int = 0) -> None:
    """Drop Retrace's and runpy's frames (anywhere in the stack: a signal handler's exception
    passes through the engine) from a traceback and the exceptions chained to it."""
    import traceback

    shown.stack = traceback.StackSummary.from_list(
        [f for f in shown.stack if not f.filename.startswith(_INTERNAL)]
    )
    if depth < 16:
        for chained in (shown.__cause__, shown.__context__):
            if chained is not None:
                _hide_internal(chained, depth + 1)


def _exit_status(exc: SystemExit) -> Outcome:
    code = exc.code
    if code is None:
        return Outcome(0)
    if isinstance(code, int):
        return Outcome(code & 0xFF)
    return Outcome(1, message=str(code))


def _join_threads() -> None:
    """Wait for the program's non-daemon threads, as the interpreter does before exiting."""
    import threading

    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon and thread.is_alive():
            thread.join()


def _run(program: Program) -> Outcome:
    outcome = _run_main(program)
    run_exit_handlers(outcome)  # the program's atexit handlers, in the sandbox
    return outcome


def _run_main(program: Program) -> Outcome:
    try:
        try:
            probes.application(program.run)()  # visible again under the transparent CLI
        finally:
            _join_threads()
    except SystemExit as exc:
        return _exit_status(exc)
    except ReplayDivergence:
        raise
    except KeyboardInterrupt as exc:
        return Outcome(130, exception=exc)
    except BaseException as exc:  # the program's uncaught exception
        return Outcome(1, exception=exc)
    return Outcome(0)


def _warm_caches() -> None:
    """Fill, in both modes, the caches that recording or replaying fills before the program.

    Writing a recording's header and checking one on replay ask ``platform`` for the Python
    implementation and version (parsed from ``sys.version`` and cached); if one mode filled a
    cache the other did not, the program could make different calls in the two runs.  Nothing
    here asks for ``platform.uname()`` (the header names the platform without it: on Linux it
    would run ``uname -p`` in a subprocess), so that cache stays cold in both.
    """
    platform.python_implementation()
    platform.python_version()


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def record(
    path: str | os.PathLike[str],
    program: Program,
    *,
    config_dirs: Sequence[str | os.PathLike[str]] = (),
    flush_interval: float = 0.1,
    hash_seed: int | None = None,
) -> Outcome:
    """Run *program* under recording into *path* (created ``0600``).

    *hash_seed* is this interpreter's ``PYTHONHASHSEED``, stored for replay (``None``: unknown).
    """
    program.check()
    config = load_config(_config_dirs(config_dirs))  # --config, then $RETRACE_CONFIG_PATH
    env = config.environment
    metadata = {
        "retrace": {
            "schema": METADATA_SCHEMA,
            "program": program.as_data(),
            "config": {"digest": config.digest(), "files": config.files},
            "environment": snapshot_environment(env) if env.snapshot else None,
            "hash_seed": hash_seed,
            "root_seed": probes.root_seed(),  # thread ids / identity hashes (patched CPython)
        }
    }
    _warm_caches()
    installation = install(config)  # a configuration error leaves no recording behind
    try:
        writer = stream_writer(path, metadata=metadata, flush_interval=flush_interval)
    except BaseException:
        installation.uninstall()
        raise
    started = _perf_counter()
    outcome = Outcome(1)
    try:
        try:
            outcome = installation.system.record(writer, _run, program)
        finally:
            installation.uninstall()
    finally:
        writer.stop()
        writer.record(
            EXIT_RECORD,
            {
                "status": outcome.status,
                "duration": _perf_counter() - started,
                "exception": None
                if outcome.exception is None
                else type(outcome.exception).__qualname__,
                # (read at the end: adapters of modules imported by the program run late)
                "not_captured": list(installation.unavailable),
            },
        )
        writer.out.close()
    return outcome


def read_metadata(rec: RecordingReader) -> dict[str, Any]:
    """The install layer's metadata of a recording (checked)."""
    meta = rec.header.extra.get("retrace")
    if not isinstance(meta, dict) or meta.get("schema") != METADATA_SCHEMA:
        raise MalformedRecordingError(
            "the file is a stream recording but not a recorded program (no program metadata)"
        )
    Program.from_data(meta.get("program"))
    config = meta.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("digest"), str):
        raise MalformedRecordingError("the recording does not name its patch configuration")
    env = meta.get("environment")
    if env is not None and (
        not isinstance(env, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
    ):
        raise MalformedRecordingError("the recorded environment is malformed")
    return meta


def check_compatible(rec: RecordingReader) -> None:
    """Raise :class:`IncompatibleRecordingError` unless this interpreter can replay *rec*."""
    header = rec.header
    here = (platform.python_implementation(), _major_minor(platform.python_version()))
    there = (header.python_implementation, _major_minor(header.python_version))
    if here != there:
        raise IncompatibleRecordingError(
            f"the recording was made with {there[0]} {header.python_version}; this is "
            f"{here[0]} {platform.python_version()}: replay it with {there[0]} {there[1]}"
        )
    if _major_minor(header.retrace_version) != _major_minor(__version__):
        raise IncompatibleRecordingError(
            f"the recording was made with Retrace {header.retrace_version}; this is Retrace "
            f"{__version__}: replay it with Retrace {_major_minor(header.retrace_version)}"
        )


def _silence_threads_after_divergence(system: Any) -> Any:
    """Once replay has diverged, the program's other threads fail too (their crossings
    refuse to run): keep their tracebacks out of the one divergence report.  Returns the
    previous ``threading.excepthook``."""
    previous = threading.excepthook

    def hook(args: Any) -> None:
        if system.divergence is None:
            previous(args)

    threading.excepthook = hook
    return previous


def replay(
    path: str | os.PathLike[str],
    *,
    config_dirs: Sequence[str | os.PathLike[str]] = (),
    rec: RecordingReader | None = None,
) -> Outcome:
    """Replay the recording at *path*; raises :class:`ReplayDivergence` at a divergence and
    :class:`TruncatedReplayError` at the end of a truncated recording."""
    if rec is None:
        rec = stream_reader(path)
    meta = read_metadata(rec)
    check_compatible(rec)
    program = Program.from_data(meta["program"])
    config = load_config(_config_dirs(config_dirs))  # --config, then $RETRACE_CONFIG_PATH
    if config.digest() != meta["config"]["digest"]:
        raise IncompatibleRecordingError(
            "the recording was made with a different patch configuration (configuration "
            "files or --config directories differ): replay with the same configuration"
        )
    cwd = rec.header.cwd
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)
    program.check()
    if meta.get("environment") is not None:
        restore_environment(meta["environment"])
    _warm_caches()
    installation = install(config)
    previous_hook = _silence_threads_after_divergence(installation.system)
    try:
        outcome = installation.system.replay(rec.reader(), _run, program)
    except ReplayDivergence as exc:
        if rec.truncated is not None and exc.index >= rec.count - 1:
            raise TruncatedReplayError(rec.count, exc) from None
        raise
    finally:
        installation.uninstall()
        if installation.system.divergence is None:
            threading.excepthook = previous_hook
    if rec.truncated is not None or EXIT_RECORD not in rec.records:
        raise TruncatedReplayError(rec.count)
    recorded = rec.records[EXIT_RECORD]
    status = recorded.get("status") if isinstance(recorded, dict) else None
    if status != outcome.status:
        raise ReplayDivergence(
            index=rec.count,
            thread=0,
            kind="exit",
            expected=f"exit status {status!r}",
            actual=f"exited with status {outcome.status}",
            location=None,
        )
    return outcome
