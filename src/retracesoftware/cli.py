"""The ``record``, ``replay`` and ``inspect`` commands (see :mod:`retracesoftware.__main__`)."""

from __future__ import annotations

import collections
import os
import sys
from collections.abc import Callable, Sequence

from . import exitcodes, hashseed
from .install import (
    ConfigError,
    IncompatibleRecordingError,
    MalformedRecordingError,
    Program,
    ProgramNotFoundError,
    RecordingReader,
    TruncatedReplayError,
    read_metadata,
    stream_reader,
)
from .install import record as _record
from .install import replay as _replay
from .proxy import EventKind, ReplayDivergence
from .stream import (
    CorruptError,
    NotARecordingError,
    StreamError,
    TruncatedError,
    UnsupportedVersionError,
)

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    import argparse
    from typing import Any

__all__ = ["inspect", "record", "replay", "summarise"]


def _fail(code: int, message: str) -> int:
    sys.stdout.flush()
    print(f"retrace: {message}", file=sys.stderr)
    sys.stderr.flush()
    return code


def _default_output(program: Program) -> str:
    if program.kind == "script":
        name = os.path.splitext(os.path.basename(program.target))[0] or "program"
    elif program.kind == "module":
        name = program.target
    else:
        name = "code"
    return f"{name}.retrace"


def _read(path: str) -> RecordingReader | int:
    """Read a recording, or print why it cannot be read and return the exit code."""
    try:
        return stream_reader(path, require="retrace")
    except MalformedRecordingError as exc:
        return _fail(exitcodes.NOT_A_RECORDING, f"not a recorded program: {exc}")
    except FileNotFoundError:
        return _fail(exitcodes.NOT_FOUND, f"no such recording: {path}")
    except NotARecordingError as exc:
        text = str(exc)
        if "not a Retrace recording" not in text:
            text = f"not a Retrace recording: {text}"
        return _fail(exitcodes.NOT_A_RECORDING, text)
    except TruncatedError as exc:
        return _fail(exitcodes.TRUNCATED, f"the recording is truncated before any event: {exc}")
    except UnsupportedVersionError as exc:
        return _fail(exitcodes.INCOMPATIBLE, f"unsupported recording format: {exc}")
    except (CorruptError, StreamError) as exc:
        return _fail(exitcodes.CORRUPT, f"the recording is corrupt: {exc}")
    except OSError as exc:
        return _fail(exitcodes.NOT_FOUND, f"cannot read the recording {path}: {exc.strerror}")


def _guard(action: Callable[[], int]) -> int:
    """Map the install layer's errors to one message and an exit code."""
    try:
        return action()
    except ProgramNotFoundError as exc:
        return _fail(exitcodes.PROGRAM_NOT_FOUND, str(exc))
    except ConfigError as exc:
        return _fail(exitcodes.CONFIG_ERROR, f"invalid configuration: {exc}")
    except MalformedRecordingError as exc:
        return _fail(exitcodes.NOT_A_RECORDING, f"not a recorded program: {exc}")
    except IncompatibleRecordingError as exc:
        return _fail(exitcodes.INCOMPATIBLE, f"incompatible recording: {exc}")
    except TruncatedReplayError as exc:
        return _fail(exitcodes.TRUNCATED, str(exc))
    except ReplayDivergence as exc:
        return _fail(exitcodes.DIVERGED, str(exc))
    except Exception as exc:
        if os.environ.get("RETRACE_DEBUG"):
            raise
        return _fail(
            exitcodes.INTERNAL_ERROR,
            f"internal error: {type(exc).__name__}: {exc} (set RETRACE_DEBUG=1 for the traceback)",
        )


def record(
    parser: argparse.ArgumentParser,
    output: str | None,
    program_argv: Sequence[str],
    config_dirs: Sequence[str],
    *,
    argv: Sequence[str] | None = None,
) -> int:
    """``retrace record``: run the program under recording; return its exit status.

    *argv* (retrace's own arguments) is used to re-execute with a known hash seed; without it
    the seed of this process is recorded only if ``PYTHONHASHSEED`` fixes it.
    """
    try:
        program = Program.from_argv(program_argv)
    except ValueError as exc:
        parser.error(str(exc))
    if argv is not None:
        hash_seed: int | None = hashseed.for_recording(argv)
    else:
        env_seed = os.environ.get("PYTHONHASHSEED", "")
        hash_seed = int(env_seed) if env_seed.isdigit() else None
    path = output if output is not None else _default_output(program)

    def run() -> int:
        try:
            outcome = _record(path, program, config_dirs=config_dirs, hash_seed=hash_seed)
        except OSError as exc:
            if exc.filename is not None and os.fsdecode(exc.filename) == path:
                return _fail(
                    exitcodes.CANNOT_WRITE, f"cannot write the recording {path}: {exc.strerror}"
                )
            raise
        outcome.report()
        return outcome.status

    return _guard(run)


def replay(path: str, config_dirs: Sequence[str], *, argv: Sequence[str] | None = None) -> int:
    """``retrace replay``: re-run the recorded program; return its (recorded) exit status.

    With *argv* (retrace's own arguments), re-executes with the recorded hash seed if needed.
    """
    rec = _read(path)
    if isinstance(rec, int):
        return rec
    meta = rec.header.extra.get("retrace")
    seed = meta.get("hash_seed") if isinstance(meta, dict) else None
    root = meta.get("root_seed") if isinstance(meta, dict) else None
    if argv is not None and type(seed) is int and 0 <= seed <= hashseed.MAX_SEED:
        known = isinstance(meta, dict) and "root_seed" in meta
        known = known and (root is None or (isinstance(root, str) and "\0" not in root))
        hashseed.for_replay(argv, seed, (root,) if known else None)

    def run() -> int:
        outcome = _replay(path, config_dirs=config_dirs, rec=rec)
        outcome.report()
        return outcome.status

    return _guard(run)


def summarise(rec: RecordingReader) -> dict[str, Any]:
    """The summary ``inspect`` prints, as plain data."""
    import datetime  # inspect only: record and replay do not need it

    header = rec.header
    meta = read_metadata(rec)
    program = Program.from_data(meta["program"])
    kinds: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    threads: set[int] = set()
    for event in rec.events:
        kinds[EventKind(event[0]).name] += 1
        threads.add(event[1])
        if event[0] == EventKind.CALL:
            calls[str(event[2])] += 1
    modules: collections.Counter[str] = collections.Counter()
    for key, count in calls.items():
        # "proxy.*" are operations on replayed external objects (file objects, ...)
        modules[key.split(".")[0]] += count
    exit_record = rec.records.get("retrace.exit")
    status = exit_record.get("status") if isinstance(exit_record, dict) else None
    duration = exit_record.get("duration") if isinstance(exit_record, dict) else None
    exception = exit_record.get("exception") if isinstance(exit_record, dict) else None
    missing = exit_record.get("not_captured") if isinstance(exit_record, dict) else None
    if not isinstance(missing, list) or not all(isinstance(m, str) for m in missing):
        missing = []
    return {
        "size": rec.size,
        "format": list(header.version),
        "recording_id": header.recording_id,
        "created": datetime.datetime.fromtimestamp(header.created, datetime.UTC).isoformat(),
        "python": f"{header.python_implementation} {header.python_version}",
        "platform": header.platform,
        "retrace": header.retrace_version,
        "program": program.argv,
        "cwd": header.cwd,
        "duration": duration,
        "exit_status": status,
        "uncaught_exception": exception,
        "complete": rec.truncated is None and exit_record is not None,
        "events": rec.count,
        "events_by_kind": dict(sorted(kinds.items())),
        "calls_by_module": dict(modules.most_common()),
        "calls_by_function": dict(calls.most_common()),
        "threads": len(threads),
        "environment_variables": len(meta.get("environment") or {}),
        "not_captured": missing,
    }


def inspect(path: str, *, as_json: bool = False) -> int:
    """``retrace inspect``: print the header and a summary of a recording."""
    rec = _read(path)
    if isinstance(rec, int):
        return rec
    try:
        info = summarise(rec)
    except MalformedRecordingError as exc:
        return _fail(exitcodes.NOT_A_RECORDING, f"not a recorded program: {exc}")
    info["file"] = path
    if as_json:
        import json

        print(json.dumps(info, indent=2))
    else:
        duration = info["duration"]
        status = info["exit_status"]
        lines = [
            f"recording:   {path} ({info['size']} bytes)",
            f"format:      {info['format'][0]}.{info['format'][1]}, id {info['recording_id']}",
            f"created:     {info['created']}",
            f"python:      {info['python']} on {info['platform']}",
            f"retrace:     {info['retrace']}",
            f"program:     python {' '.join(info['program'])}",
            f"cwd:         {info['cwd']}",
            f"duration:    {'unknown' if duration is None else f'{duration:.3f} s'}",
            f"exit status: {'unknown (truncated)' if status is None else status}"
            + (f" (uncaught {info['uncaught_exception']})" if info["uncaught_exception"] else ""),
            f"complete:    {'yes' if info['complete'] else 'no: the recording is truncated'}",
            f"threads:     {info['threads']}",
            *(
                [f"not captured on this Python: {', '.join(info['not_captured'])}"]
                if info["not_captured"]
                else []
            ),
            f"events:      {info['events']}",
        ]
        for kind, count in info["events_by_kind"].items():
            lines.append(f"  {count:>8}  {kind}")
        lines.append("calls by module:")
        for module, count in info["calls_by_module"].items():
            lines.append(f"  {count:>8}  {module}")
        lines.append("calls by function:")
        for key, count in info["calls_by_function"].items():
            lines.append(f"  {count:>8}  {key}")
        print("\n".join(lines))
    if not info["complete"]:
        return _fail(
            exitcodes.TRUNCATED,
            "the recording is truncated (the recorded program was interrupted)",
        )
    return exitcodes.OK
