"""String-hash randomisation: record and replay run with the same ``PYTHONHASHSEED``.

The order in which a ``set`` or ``dict`` of ``str`` is iterated depends on the interpreter's
hash seed, fixed when the interpreter starts.  ``retrace record`` therefore makes sure the
recorded program runs with a known seed (re-executing itself with a fresh random
``PYTHONHASHSEED`` when none is set) and stores it; ``retrace replay`` re-executes itself with
the stored seed when it differs.  The variables set for this are removed from ``os.environ``
before the program starts, so it sees the environment it was given.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from .utils import probes

_MARK = "_RETRACE_HASHSEED_SET"
MAX_SEED = 4294967295


def _exec(argv: Sequence[str], seed: int, root: tuple[str | None] | None = None) -> None:
    env = dict(os.environ, PYTHONHASHSEED=str(seed), **{_MARK: "1"})
    if root is not None:  # the thread-id root seed of a patched interpreter
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
    if root is not None and "thread_ids" not in probes.status().available:
        root = None  # nothing to match on an interpreter without thread-id probes
    root_ok = root is None or probes.root_seed() == root[0]
    if _adopted():
        return  # already re-executed once: never loop
    if current != str(seed) or not root_ok:
        _exec(argv, seed, root)
