"""The ``.pth`` hook: record a Python program started normally when ``RETRACE_RECORDING`` is set.

``retrace enable-hook`` writes :data:`PTH_NAME` into the site-packages directory of the active
environment.  The interpreter executes its one line at start-up: without the variable it only
reads ``os.environ`` (nothing is imported).  With ``RETRACE_RECORDING=FILE`` it imports this
module and :func:`start` re-executes the process as ``python [OPTIONS] -m retracesoftware record
-o FILE -- PROGRAM ARGS`` (same pid, same standard streams), so the recording is an ordinary one
that ``retrace replay`` replays.

Child processes: without ``%p`` in the value, only the process started with the variable records
(the variable is removed from the environment the program sees, so its Python children run
normally and never overwrite the file); with ``%p`` (replaced by the process id) every Python
process that inherits the variable records into its own file.

This module is imported in the hooked process before anything else: it imports nothing heavy at
module level.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "ENV",
    "PTH_NAME",
    "HookError",
    "disable",
    "enable",
    "expand_path",
    "hook_file",
    "parse_command_line",
    "pth_text",
    "site_packages",
    "start",
]

#: The environment variable that turns recording on.
ENV = "RETRACE_RECORDING"
#: The file ``enable-hook`` writes into site-packages.
PTH_NAME = "retracesoftware-hook.pth"
_MARKER = "# Retrace hook"
_SCHEMA = 1

#: Interpreter options that take a value (in the same argument or the next one).
_WITH_VALUE = "WX"
#: Options replaced for the re-executed interpreter: ``-E`` and ``-I`` would make it ignore the
#: ``PYTHONHASHSEED`` Retrace sets (the recorded program must run with a known seed); ``-I``
#: keeps its other effects (no user site-packages, no unsafe ``sys.path`` entry).
_REPLACED = {"-E": (), "-I": ("-s", "-P")}

_started = False


class HookError(Exception):
    """The hook cannot be installed, removed or started (the message says why)."""


# ------------------------------------------------------------------------- installation


def site_packages() -> Path:
    """The site-packages directory of the active environment (``sys.prefix``)."""
    import sysconfig

    return Path(sysconfig.get_path("purelib"))


def hook_file(directory: Path | None = None) -> Path:
    """Where the hook lives (or would live) in *directory* (default: :func:`site_packages`)."""
    return (site_packages() if directory is None else directory) / PTH_NAME


def pth_text(location: Path, package_dir: Path) -> str:
    """The content of the hook file at *location*; *package_dir* holds ``retracesoftware``.

    The executable line does nothing but read ``os.environ`` unless the variable is set and
    non-empty.  Then it imports :mod:`retracesoftware.hook` (looking in *package_dir* too, for
    when Retrace lives in a site directory processed later) and calls :func:`start`.
    """
    message = (
        f"retrace: {ENV} is set but Retrace cannot be imported (%s): not recording; remove "
        f"{str(location).replace('%', '%%')} (`retrace disable-hook`) if Retrace was "
        "uninstalled\n"
    )
    code = (
        "try:\n"
        " from retracesoftware import hook as _retrace_hook\n"
        "except ImportError:\n"
        f" sys.path.append({str(package_dir)!r})\n"
        " try:\n"
        "  from retracesoftware import hook as _retrace_hook\n"
        " except ImportError as _retrace_exc:\n"
        "  _retrace_hook = None\n"
        f"  sys.stderr.write({message!r} % (_retrace_exc,))\n"
        " finally:\n"
        f"  sys.path.remove({str(package_dir)!r})\n"
        "if _retrace_hook is not None:\n"
        " _retrace_hook.start()\n"
    )
    return (
        f"{_MARKER} (schema {_SCHEMA}): records Python programs when {ENV}=FILE is set.\n"
        "# Written by `retrace enable-hook`; remove it with `retrace disable-hook`.\n"
        f"import os, sys; os.environ.get({ENV!r}) and exec({code!r})\n"
    )


def _package_dir() -> Path:
    return Path(__file__).resolve().parent.parent


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


def enable(directory: Path | None = None) -> tuple[Path, str]:
    """Install the hook; return its path and ``"installed"``, ``"updated"`` or ``"unchanged"``.

    Idempotent: an up-to-date hook is left alone.  Raises :class:`HookError` when the
    directory does not exist or is not writable.
    """
    target = hook_file(directory)
    text = pth_text(target, _package_dir())
    try:
        current: str | None = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    except OSError as exc:
        raise HookError(f"cannot read {target}: {_describe(exc)}") from None
    if current == text:
        return target, "unchanged"
    if current is not None and not current.startswith(_MARKER):
        raise HookError(f"{target} exists and was not written by Retrace: not replacing it")
    if not target.parent.is_dir():
        raise HookError(f"the site-packages directory {target.parent} does not exist")
    temporary = target.with_name(f".{PTH_NAME}.{os.getpid()}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise HookError(
            f"cannot install the hook: {target.parent} is not writable ({_describe(exc)}); "
            "activate a virtual environment you own, or run with the rights to write there"
        ) from None
    return target, "installed" if current is None else "updated"


def disable(directory: Path | None = None) -> Path | None:
    """Remove the hook; return the removed file, or ``None`` if there was none."""
    target = hook_file(directory)
    try:
        head = target.read_text(encoding="utf-8")[: len(_MARKER)]
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HookError(f"cannot read {target}: {_describe(exc)}") from None
    if head != _MARKER:
        raise HookError(f"{target} was not written by Retrace: not removing it")
    try:
        target.unlink()
    except OSError as exc:
        raise HookError(
            f"cannot remove the hook: {target.parent} is not writable ({_describe(exc)})"
        ) from None
    return target


# ------------------------------------------------------------------------------ start-up


def expand_path(template: str, pid: int) -> str:
    """*template* with ``%p`` replaced by *pid* and ``%%`` by ``%``.

    Raises :class:`ValueError` for any other ``%`` sequence.
    """
    out: list[str] = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        nxt = template[i + 1 : i + 2]
        if nxt == "p":
            out.append(str(pid))
        elif nxt == "%":
            out.append("%")
        else:
            raise ValueError(
                f"{ENV}={template!r}: unknown placeholder {'%' + nxt!r} (use %p for the "
                "process id, %% for a percent sign)"
            )
        i += 2
    return "".join(out)


def parse_command_line(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """Split an interpreter command line (``sys.orig_argv``) into its options and the program.

    Returns ``(options, program)``: *program* is what ``retrace record`` takes after ``--``
    (``script.py ARGS``, ``-m module ARGS`` or ``-c code ARGS``), or ``None`` when the
    interpreter runs no program (interactive, program read from standard input, ``--help``).
    Combined options are split (``-OWerror`` gives ``-O``, ``-W``, ``error``).
    """
    options: list[str] = []
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if arg == "--check-hash-based-pycs":
            options += list(argv[i : i + 2])
            i += 2
            continue
        if arg.startswith("--"):  # --help, --version...: no program runs
            return options, None
        if not arg.startswith("-") or arg == "-":
            break
        j = 1
        while j < len(arg):
            ch = arg[j]
            rest = arg[j + 1 :]
            if ch in "cm" or ch in _WITH_VALUE:
                if rest:
                    value, i = rest, i + 1
                elif i + 1 < len(argv):
                    value, i = argv[i + 1], i + 2
                else:
                    return options, None
                if ch in _WITH_VALUE:
                    options += [f"-{ch}", value]
                    break
                return options, [f"-{ch}", value, *argv[i:]]
            options.append(f"-{ch}")
            j += 1
        else:
            i += 1
    if i >= len(argv) or argv[i] == "-":
        return options, None
    return options, list(argv[i:])


def _is_retrace(program: Sequence[str]) -> bool:
    """True when the program is Retrace's own command (never recorded by the hook)."""
    if program[0] == "-m":
        return program[1] == "retracesoftware" or program[1].startswith("retracesoftware.")
    if program[0] == "-c" or Path(program[0]).name != "retrace":
        return False
    try:
        with open(program[0], "rb") as script:
            return b"retracesoftware" in script.read(4096)
    except OSError:
        return False


def _warn(message: str) -> None:
    sys.stderr.write(f"retrace: {message}\n")
    sys.stderr.flush()


def _consistent(program: Sequence[str], argv: Sequence[str]) -> bool:
    """The parsed program agrees with the interpreter's own ``sys.argv``."""
    if program[0] in ("-c", "-m"):
        return len(argv) >= 1 and argv[0] == program[0] and list(argv[1:]) == list(program[2:])
    return list(argv) == list(program)


def start() -> None:
    """Called by the hook file when ``RETRACE_RECORDING`` is set: re-execute under record.

    Returns (the program then runs unrecorded, after a warning) only when this process cannot
    be recorded: an interactive session, a program read from standard input, or Retrace's own
    command.  A malformed value stops the process with status 2.
    """
    global _started
    if _started:  # some interpreters process a site directory's .pth files twice
        return
    _started = True
    template = os.environ.get(ENV, "")
    if not template:
        return
    options, program = parse_command_line(getattr(sys, "orig_argv", sys.argv))
    if program is not None and _is_retrace(program):
        return
    if program is None or sys.flags.inspect or sys.flags.interactive:
        _warn(
            f"{ENV} is set, but an interactive session or a program read from standard input "
            "cannot be recorded: running without recording"
        )
        return
    if not _consistent(program, sys.argv):
        _warn(
            f"{ENV} is set, but the command line {sys.orig_argv!r} could not be understood: "
            "running without recording"
        )
        return
    from . import exitcodes, hashseed

    try:
        path = expand_path(template, os.getpid())
    except ValueError as exc:
        _warn(str(exc))
        os._exit(exitcodes.USAGE)

    env = dict(os.environ)
    if "%p" not in template.replace("%%", ""):
        del env[ENV]  # only this process records: its children must not overwrite the file
    seed = env.get("PYTHONHASHSEED", "")
    if not seed.isdigit():
        # retrace record would re-execute once more to fix the seed: choose it here instead
        env["PYTHONHASHSEED"] = str(int.from_bytes(os.urandom(4), "little"))
        env[hashseed._MARK] = "1"
    kept = [out for opt in options for out in _REPLACED.get(opt, (opt,))]
    command = [sys.executable, *kept, "-m", "retracesoftware", "record", "-o", path]
    try:
        os.execve(sys.executable, [*command, "--", *program], env)
    except OSError as exc:
        _warn(f"cannot start recording ({sys.executable}: {_describe(exc)})")
        os._exit(exitcodes.INTERNAL_ERROR)


# ------------------------------------------------------------------------------ commands


def command(name: str) -> int:
    """Run ``retrace enable-hook``, ``disable-hook`` or ``hook-status``; return the exit code."""
    from . import exitcodes

    try:
        if name == "enable-hook":
            path, what = enable()
            verb = {"installed": "enabled", "updated": "updated", "unchanged": "already enabled"}
            print(f"hook {verb[what]}: {path}")
            print(f"  Python programs run by {sys.executable} record when {ENV}=FILE is set")
            return exitcodes.OK
        if name == "disable-hook":
            removed = disable()
            if removed is None:
                print(f"hook not enabled: nothing to remove ({hook_file()} does not exist)")
            else:
                print(f"hook disabled: removed {removed}")
            return exitcodes.OK
        target = hook_file()
        if target.is_file():
            print(f"hook enabled: {target}")
            return exitcodes.OK
        print(f"hook not enabled (`retrace enable-hook` would write {target})")
        return 1
    except HookError as exc:
        _warn(str(exc))
        return exitcodes.CANNOT_WRITE
