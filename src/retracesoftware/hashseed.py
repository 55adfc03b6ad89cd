"""String-hash randomisation: record and replay run with the same ``PYTHONHASHSEED``.

The order in which a ``set`` or ``dict`` of ``str`` is iterated depends on the interpreter's
hash seed, fixed when the interpreter starts.  ``retrace record`` therefore makes sure the
recorded program runs with a known seed (re-executing itself with a fresh random
``PYTHONHASHSEED`` when none is set) and stores it; ``retrace replay`` re-executes itself with
the stored seed when it differs.  The variables set for this are removed from ``os.environ``
before the program starts, so it sees the environment it was given.

:func:`early` runs first thing in ``python -m retracesoftware``: when the command will need a
re-execution it happens there, before the rest of Retrace is imported, so the process that is
replaced costs little more than the interpreter's own start.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # no typing / collections imports: this runs before the re-execution
if TYPE_CHECKING:
    from collections.abc import Sequence

_MARK = "_RETRACE_HASHSEED_SET"
MAX_SEED = 4294967295


def _exec(argv: Sequence[str], seed: int, root: tuple[str | None] | None = None) -> None:
    env = dict(os.environ, PYTHONHASHSEED=str(seed), **{_MARK: "1"})
    if root is not None:  # the thread-id root seed of a patched interpreter
        from .utils import probes

        env.pop(probes.ROOT_SEED_ENV, None)
        env.update({} if root[0] is None else {probes.ROOT_SEED_ENV: root[0]})
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "retracesoftware", *argv], env)


def _adopted() -> bool:
    """True in the re-executed process: forget the variables set for it."""
    if os.environ.pop(_MARK, None) is None:
        return False
    os.environ.pop("PYTHONHASHSEED", None)
    return True


def for_recording(argv: Sequence[str]) -> int:
    """The hash seed of this process, re-executing with a fresh one if it is random."""
    current = os.environ.get("PYTHONHASHSEED")
    if _adopted() and current is not None:
        return int(current)
    if current is None or current == "random" or not current.isdigit():
        _exec(argv, int.from_bytes(os.urandom(4), "little"))
    return int(current)


def for_replay(argv: Sequence[str], seed: int, root: tuple[str | None] | None = None) -> None:
    """Make sure this process runs with *seed*, re-executing if necessary.

    *root* (``(recorded root seed,)``) also makes a patched interpreter's thread ids, and so its
    identity hashes, those of the recording (``RETRACE_ROOT_SEED``, read once at start-up).
    """
    current = os.environ.get("PYTHONHASHSEED")
    root, root_ok = _root_check(root)
    if _adopted():
        return  # already re-executed once: never loop
    if current != str(seed) or not root_ok:
        _exec(argv, seed, root)


def _may_have_probes() -> bool:
    """False on an interpreter without the ``_retrace`` builtin (cheap: imports nothing)."""
    return "_retrace" in sys.builtin_module_names


def _root_check(root: tuple[str | None] | None) -> tuple[tuple[str | None] | None, bool]:
    """(the root seed to set, whether this process already has it)."""
    if root is None:
        return None, True
    if not _may_have_probes():
        return None, True  # a vanilla interpreter: no thread-id probes (no need to ask probes)
    from .utils import probes  # only when the recording names a root seed

    if "thread_ids" not in probes.status().available:
        return None, True  # nothing to match on an interpreter without thread-id probes
    return root, probes.root_seed() == root[0]


def _command(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """A cheap look at retrace's own arguments (before ``--``): (command, its arguments)."""
    head = list(argv[: list(argv).index("--")] if "--" in argv else argv)
    for i, token in enumerate(head):
        if token == "--recording" or token.startswith("--recording="):
            return "record", []
        if not token.startswith("-"):
            return token, head[i + 1 :]
    return None, []


def _replay_file(args: list[str]) -> str | None:
    skip = False
    for token in args:
        if skip:
            skip = False
        elif token == "--config":
            skip = True
        elif not token.startswith("-"):
            return token
    return None


def early(argv: Sequence[str]) -> None:
    """Re-execute now if ``record`` or ``replay`` will have to (as :func:`for_recording` and
    :func:`for_replay` would, with the same seeds).  Anything unexpected (a bad command line,
    an unreadable recording) is left to the command itself, which reports it."""
    if _MARK in os.environ:  # already re-executed: for_recording / for_replay adopt the seed
        return
    command, args = _command(argv)
    current = os.environ.get("PYTHONHASHSEED")
    if command == "record":
        if current is None or not current.isdigit():
            _exec(argv, int.from_bytes(os.urandom(4), "little"))
        return
    if command != "replay":
        return
    path = _replay_file(args)
    if path is None:
        return
    try:
        from retracesoftware.stream import Reader  # the header only, not the events

        with Reader(path) as reader:
            meta = reader.header.extra.get("retrace")
    except Exception:  # the replay command itself reports it properly
        return
    if not isinstance(meta, dict):
        return
    seed = meta.get("hash_seed")
    if type(seed) is not int or not 0 <= seed <= MAX_SEED:
        return
    # The root seed exactly as the replay command reads it (cli.replay).
    root = meta.get("root_seed")
    known = "root_seed" in meta and (root is None or (isinstance(root, str) and "\0" not in root))
    root_t, root_ok = _root_check((root,) if known else None)
    if current != str(seed) or not root_ok:
        _exec(argv, seed, root_t)
