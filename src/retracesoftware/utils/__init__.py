"""Low-level CPython tools used by the record/replay engine.

Everything here is implemented in the C++ extension ``_utils``; this module re-exports it with
types and a few small Python conveniences.  Nothing here knows about recordings: the pieces are
general-purpose (per-thread gates, type-flag lifting, deterministic identity hashing, stack
capture, an intercepting dict, an event log and the boundary-crossing fast path).

See ``docs/utils.md`` for the design.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager

from . import _utils
from ._utils import (
    DIGEST_PREFIX,
    FNV_OFFSET,
    MAX_GATES,
    TPFLAGS_BASETYPE,
    TPFLAGS_HEAPTYPE,
    TPFLAGS_IMMUTABLETYPE,
    Boundary,
    Crossing,
    EventLog,
    Gate,
    GateScope,
    InterceptDict,
    StackFactory,
    WithFlags,
    WithoutFlags,
    fingerprint,
    fingerprint_full,
    fnv1a,
    hash_state,
    patch_hash,
    reset_hash_sequence,
    unpatch_hash,
)

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DIGEST_PREFIX",
    "FNV_OFFSET",
    "MAX_GATES",
    "TPFLAGS_BASETYPE",
    "TPFLAGS_HEAPTYPE",
    "TPFLAGS_IMMUTABLETYPE",
    "Boundary",
    "Crossing",
    "EventLog",
    "Gate",
    "GateScope",
    "GateState",
    "InterceptDict",
    "StackFactory",
    "WithFlags",
    "WithoutFlags",
    "deterministic_hash",
    "fingerprint",
    "fingerprint_full",
    "fnv1a",
    "hash_state",
    "patch_hash",
    "reset_hash_sequence",
    "set_type_attribute",
    "unpatch_hash",
]


class GateState(enum.IntEnum):
    """The per-thread states a :class:`Gate` can hold."""

    OFF = _utils.OFF
    """The thread is not part of the sandbox: boundary calls go straight through."""
    INSIDE = _utils.INSIDE
    """Sandboxed code is running: boundary calls are recorded or replayed."""
    OUTSIDE = _utils.OUTSIDE
    """A boundary call is in progress (crossing out): calls back into Python are callbacks."""
    DISABLED = _utils.DISABLED
    """The engine's own work: nothing is recorded."""


_MISSING = object()


def set_type_attribute(cls: type, name: str, value: Any = _MISSING) -> None:
    """Set (or, without *value*, delete) ``cls.name`` even when *cls* is an immutable type.

    The immutable-type flag is lifted for the duration of the assignment only.  Where the
    interpreter keeps a static type's dict per interpreter (the ``datetime`` classes from
    Python 3.13) the dict that lookups use is changed, not the unused ``tp_dict``; special
    (``__dunder__``) names raise :class:`TypeError` there.
    """
    if value is _MISSING:
        _utils.set_type_attribute(cls, name)
    else:
        _utils.set_type_attribute(cls, name, value)


@contextmanager
def deterministic_hash(*types: type, start: int = 0) -> Iterator[None]:
    """Give *types* sequence-based identity hashes for the duration of the block."""
    reset_hash_sequence(start)
    applied = [cls for cls in types if patch_hash(cls)]
    try:
        yield
    finally:
        for cls in reversed(applied):
            unpatch_hash(cls)
