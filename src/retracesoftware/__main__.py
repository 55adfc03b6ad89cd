"""The ``retrace`` command (also ``python -m retracesoftware``)."""

from __future__ import annotations

import os
import sys

from . import __version__, exitcodes, hashseed

TYPE_CHECKING = False  # not from typing: this module runs before the hash-seed re-execution
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any

PROGRAM_HELP = (
    "the program and its arguments, after `--`: `script.py ARGS`, `-m module ARGS` or "
    "`-c code ARGS`"
)


def _record_arguments(rec: argparse.ArgumentParser) -> None:
    import argparse

    rec.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="the recording to write (created with mode 0600; default: NAME.retrace in the "
        "current directory, NAME being the script, module or `code`)",
    )
    rec.add_argument(
        "--config",
        metavar="DIR",
        action="append",
        default=[],
        help="a directory of extra patch configuration files (*.toml); repeatable",
    )
    rec.add_argument("program", nargs=argparse.REMAINDER, metavar="PROGRAM", help=PROGRAM_HELP)


def _replay_arguments(rep: argparse.ArgumentParser) -> None:
    rep.add_argument("file", metavar="FILE", help="the recording")
    rep.add_argument(
        "--config",
        metavar="DIR",
        action="append",
        default=[],
        help="the extra configuration directories the recording was made with; repeatable",
    )


def _inspect_arguments(ins: argparse.ArgumentParser) -> None:
    ins.add_argument("file", metavar="FILE", help="the recording")
    ins.add_argument("--json", action="store_true", help="print the summary as JSON")


def _test_arguments(tst: argparse.ArgumentParser) -> None:
    import argparse

    tst.add_argument(
        "--config",
        metavar="DIR",
        action="append",
        default=[],
        help="a directory of extra patch configuration files (*.toml); repeatable",
    )
    tst.add_argument(
        "--report-only",
        action="store_true",
        help="list divergent tests in the summary only, without failing them",
    )
    tst.add_argument(
        "pytest_args", nargs=argparse.REMAINDER, metavar="PYTEST_ARGS", help="pytest's arguments"
    )


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def _columns() -> int:
    """``shutil.get_terminal_size().columns``: ``$COLUMNS``, else the width of the terminal
    on standard output, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


def _formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's own help formatter (``formatter_class``), given the width it would compute:
    left to itself it imports ``shutil`` (and ``bz2``, ``lzma``...) for the terminal's width,
    and it makes one formatter per argument added."""
    import argparse

    return argparse.HelpFormatter(prog, width=_columns() - 2)


def _parser(
    arguments: Callable[[argparse.ArgumentParser], None], **kwargs: Any
) -> argparse.ArgumentParser:
    """A command's parser, built at once (``parser_class`` of ``build_parser()``)."""
    import argparse

    parser = argparse.ArgumentParser(formatter_class=_formatter, **kwargs)
    arguments(parser)
    return parser


class _Lazy:
    """An ``ArgumentParser`` built on first use: any attribute of the real parser is reachable.

    Building every command's parser costs more than a whole parse (a run only builds the one
    of the command it runs), and the common command lines need no parser at all.
    """

    def __init__(self, build: Callable[[], argparse.ArgumentParser]) -> None:
        self._build = build
        self._real: argparse.ArgumentParser | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_build", "_real"):
            raise AttributeError(name)
        if self._real is None:
            self._real = self._build()
        return getattr(self._real, name)


def _lazy_parser(
    arguments: Callable[[argparse.ArgumentParser], None], **kwargs: Any
) -> argparse.ArgumentParser:
    """A command's parser, built on first use (``parser_class`` of ``build_parser(lazy=True)``)."""
    return _Lazy(lambda: _parser(arguments, **kwargs))  # type: ignore[return-value]


def build_parser(*, lazy: bool = False) -> argparse.ArgumentParser:
    """Return the argument parser of the ``retrace`` command.

    With *lazy*, each command's own parser is built only when that command is parsed (or any
    of its attributes is used); the parser accepts, prints and rejects exactly the same.
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog="retrace",
        description="Deterministic record and replay for Python programs.",
        epilog="Exit codes of Retrace's own failures are listed in docs/troubleshooting.md.",
        formatter_class=_formatter,
    )
    parser.add_argument("--version", action="version", version=f"retrace {__version__}")
    parser.add_argument(
        "--recording",
        metavar="FILE",
        help="record the program given after `--` into FILE (the same as `record -o FILE`)",
    )
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_lazy_parser if lazy else _parser
    )

    sub.add_parser(
        "record",
        arguments=_record_arguments,
        help="run a program and record it",
        description="Run PROGRAM normally (its input, output and exit status pass through) "
        "while recording everything it receives from outside the interpreter.",
    )
    sub.add_parser(
        "replay",
        arguments=_replay_arguments,
        help="re-run a recorded program against its recording",
        description="Re-run the recorded program (same arguments, recorded working directory "
        "and environment) answering every call to the outside world from the recording.",
    )
    sub.add_parser(
        "inspect",
        arguments=_inspect_arguments,
        help="summarise a recording",
        description="Print a recording's header and a summary: program, duration, events by "
        "kind and function, threads, exit status, size.",
    )
    sub.add_parser(
        "test",
        arguments=_test_arguments,
        help="run a pytest suite, each test recorded and then replayed",
        description="Run pytest in this interpreter with the arguments after `--`; each test "
        "is recorded, then replayed at once, and every test whose replay diverges from its "
        "recording is reported (as a failure, and in a summary). Exits with pytest's status.",
    )

    hook_epilog = (
        "With the hook enabled, `RETRACE_RECORDING=out.retrace python app.py` records app.py "
        "into out.retrace (replay it with `retrace replay out.retrace`); without the variable "
        "the hook does nothing and imports nothing. Only the process started with the "
        "variable records: it is removed from the environment its children see. Put %p in "
        "the value (replaced by the process id) to record every Python process that inherits "
        "it into its own file; %% is a literal %."
    )
    for name, text, description in (
        (
            "enable-hook",
            "record programs started with RETRACE_RECORDING=FILE set",
            "Install a hook (a .pth file) into the site-packages of the active environment "
            "so that any Python program it runs is recorded when RETRACE_RECORDING=FILE is "
            "set. Running it again is harmless.",
        ),
        (
            "disable-hook",
            "remove the hook installed by enable-hook",
            "Remove the hook file from the site-packages of the active environment.",
        ),
        (
            "hook-status",
            "say whether the hook is enabled and where it lives",
            "Print where the hook file lives; exit 0 if it is enabled, 1 if not.",
        ),
    ):
        sub.add_parser(
            name, arguments=_no_arguments, help=text, description=description, epilog=hook_epilog
        )
    return parser


def _split(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Split at the first ``--``: (retrace's arguments, the program's or None)."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    try:
        return _control_plane(_main)(argv)
    except BrokenPipeError:
        # The reader of our output went away (`retrace inspect --json | head`): stop quietly,
        # as a command killed by SIGPIPE would, and keep the exit-time flush from failing too.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, AttributeError, ValueError):  # no usable stdout: nothing to flush
            pass
        return 128 + 13  # SIGPIPE


def _control_plane(fn: Callable[..., int]) -> Callable[..., int]:
    """On a patched CPython, run Retrace's own frames coordinate-transparent.

    Record and replay then give the recorded program (re-entered with ``include``, see
    ``install.session``) the same coordinates, thread ids and identity hashes.
    """
    if os.environ.get("RETRACE_PROBES", "").strip().lower() == "off":
        return fn
    try:
        from _retrace import exclude
    except ImportError:
        return fn
    return exclude(fn)


def _quick_parse(head: list[str]) -> Any:
    """What ``build_parser().parse_args(head)`` gives for the usual ``record [-o FILE]
    [--config DIR]...`` (the program after ``--``) and ``replay FILE [--config DIR]...``,
    without argparse (importing it and parsing cost more than the rest of the command line);
    ``None`` for anything else: argparse parses it, prints the help or reports the error."""
    if not head or head[0] not in ("record", "replay"):
        return None
    import types

    command = head[0]
    config: list[str] = []
    found: dict[str, Any] = {"output": None} if command == "record" else {"file": None}
    i = 1
    while i < len(head):
        token = head[i]
        if not token.startswith("-"):
            if command == "record" or found["file"] is not None:
                return None  # record's program before `--`, or a second file
            found["file"] = token
            i += 1
            continue
        if i + 1 == len(head) or head[i + 1].startswith("-"):
            return None
        if token == "--config":
            config.append(head[i + 1])
        elif command == "record" and token in ("-o", "--output"):
            found["output"] = head[i + 1]
        else:
            return None
        i += 2
    if command == "record":
        found["program"] = []
    elif found["file"] is None:
        return None
    return types.SimpleNamespace(recording=None, command=command, config=config, **found)


def _main(argv: Sequence[str] | None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if argv is None:
        hashseed.early(args_list)  # re-execute (if needed) before importing anything heavy
    parser: argparse.ArgumentParser = _Lazy(lambda: build_parser(lazy=True))  # type: ignore[assignment]
    head, tail = _split(args_list)
    args = _quick_parse(head)
    if args is None:
        args = parser.parse_args(head)
    if args.command == "record" and args.program:
        args = parser.parse_args(args_list)  # the program came before any `--`
        tail = None
    if args.command is None:
        if args.recording is None:
            if tail is not None:
                parser.error("a program after `--` needs `record` or `--recording FILE`")
            parser.print_usage(sys.stderr)
            print(
                "retrace: no command given: try `retrace record -- script.py` or `retrace --help`",
                file=sys.stderr,
            )
            return exitcodes.USAGE
        if not tail:
            parser.error("--recording FILE needs a program after `--`")
        from . import cli  # heavy imports only when a command runs

        return cli.record(parser, args.recording, tail, [], argv=args_list)
    if args.recording is not None:
        parser.error("--recording cannot be combined with a command")
    if args.command == "record":
        program = tail if tail is not None else args.program
        if not program:
            parser.error("record needs a program: retrace record [-o FILE] -- PROGRAM [ARGS...]")
        from . import cli

        return cli.record(parser, args.output, program, args.config, argv=args_list)
    if args.command == "test":
        try:
            from .testing import TestRunner
        except ImportError as exc:
            if exc.name not in ("pytest", "_pytest"):
                raise
            print("retrace: `retrace test` needs pytest: pip install pytest", file=sys.stderr)
            return exitcodes.USAGE

        pytest_args = [*args.pytest_args, *(tail or [])]
        runner = TestRunner(pytest_args, config_dirs=args.config, fail=not args.report_only)
        return runner.run().exit_code
    if tail is not None:
        parser.error(f"{args.command} takes no program after `--`")
    if args.command in ("enable-hook", "disable-hook", "hook-status"):
        from . import hook

        return hook.command(args.command)
    from . import cli

    if args.command == "replay":
        return cli.replay(args.file, args.config, argv=args_list)
    return cli.inspect(args.file, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
