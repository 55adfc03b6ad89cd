"""Detect the native execution probes of a patched CPython (``_retrace``).

Retrace runs on vanilla CPython too; the probes only add deterministic thread
ids, deterministic identity hashes, execution coordinates, scheduling
callbacks and ``call_at``.  ``RETRACE_PROBES`` selects the policy:

``auto`` (default)
    use the probes when present, otherwise fall back and say what is missing;
``require``
    fail early (``ProbesUnavailableError``) unless every probe is present;
``off``
    never use the probes, even on a patched interpreter.
"""

from __future__ import annotations

import enum
import importlib
import os
import sys
import threading
from collections.abc import Callable
from types import ModuleType

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")

__all__ = [
    "FEATURES",
    "ROOT_SEED_ENV",
    "SUPPORTED_ABI_VERSIONS",
    "ProbePolicy",
    "ProbeStatus",
    "ProbesUnavailableError",
    "describe",
    "identity_hash",
    "policy",
    "root_seed",
    "status",
    "thread_id",
]

POLICY_ENV = "RETRACE_PROBES"
#: Seeds the deterministic thread ids (and so identity hashes) of a patched
#: interpreter; read once, when the first thread id is handed out.
ROOT_SEED_ENV = "RETRACE_ROOT_SEED"
SUPPORTED_ABI_VERSIONS = frozenset({1})

#: Feature name -> bit of ``_retrace.FEATURE_FLAGS`` (probe ABI 1).
FEATURES: dict[str, int] = {
    "thread_scheduling": 1 << 0,
    "coordinates": 1 << 1,
    "call_at": 1 << 2,
    "thread_ids": 1 << 3,
    "identity_hash": 1 << 4,
}


class ProbePolicy(enum.Enum):
    """How Retrace uses the native probes."""

    AUTO = "auto"
    REQUIRE = "require"
    OFF = "off"


class ProbesUnavailableError(RuntimeError):
    """``RETRACE_PROBES=require`` but the interpreter lacks (some) probes."""


class ProbeStatus:
    """What the running interpreter offers and what Retrace will use (immutable; compares by
    value).  Written out rather than a frozen dataclass (``dataclasses`` is slow to import)
    or a ``utils._plain.FrozenRecord``: this module also runs on its own."""

    _FIELDS = ("policy", "present", "abi_version", "available", "missing", "reason")
    __slots__ = _FIELDS
    __match_args__ = _FIELDS
    policy: ProbePolicy
    present: bool  #: ``_retrace`` is importable
    abi_version: int | None
    available: frozenset[str]  #: features Retrace will use
    missing: frozenset[str]  #: features Retrace will not use
    reason: str  #: why features are missing ("" when none are)

    def __init__(
        self,
        policy: ProbePolicy,
        present: bool,
        abi_version: int | None,
        available: frozenset[str],
        missing: frozenset[str],
        reason: str,
    ) -> None:
        values = (policy, present, abi_version, available, missing, reason)
        for name, value in zip(self._FIELDS, values, strict=True):
            object.__setattr__(self, name, value)

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._fields() == other._fields()  # type: ignore[attr-defined]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        body = ", ".join(f"{n}={v!r}" for n, v in zip(self._FIELDS, self._fields(), strict=True))
        return f"ProbeStatus({body})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[object, ...]:
        return (ProbeStatus, self._fields())

    @property
    def active(self) -> bool:
        """True when at least one native probe is in use."""
        return bool(self.available)


def policy(environ: dict[str, str] | None = None) -> ProbePolicy:
    """Return the policy selected by ``RETRACE_PROBES`` (default ``auto``)."""
    raw = (os.environ if environ is None else environ).get(POLICY_ENV, "auto")
    value = raw.strip().lower() or "auto"
    try:
        return ProbePolicy(value)
    except ValueError:
        choices = ", ".join(p.value for p in ProbePolicy)
        raise ValueError(f"{POLICY_ENV}={raw!r} is not one of: {choices}") from None


def _import_retrace() -> ModuleType | None:
    try:
        return importlib.import_module("_retrace")
    except ImportError:
        return None


def _evaluate(
    chosen: ProbePolicy, module: ModuleType | None
) -> tuple[ProbeStatus, ModuleType | None]:
    everything = frozenset(FEATURES)
    if chosen is ProbePolicy.OFF:
        reason = f"{POLICY_ENV}=off"
        return ProbeStatus(chosen, module is not None, None, frozenset(), everything, reason), None
    if module is None:
        impl = sys.implementation.name
        version = ".".join(map(str, sys.version_info[:3]))
        reason = (
            f"{impl} {version} has no _retrace module (not a Retrace-patched CPython; "
            "see retracesoftware-cpython)"
        )
        return ProbeStatus(chosen, False, None, frozenset(), everything, reason), None
    abi = getattr(module, "ABI_VERSION", None)
    if abi not in SUPPORTED_ABI_VERSIONS:
        reason = (
            f"_retrace probe ABI {abi!r} is not supported "
            f"(supported: {sorted(SUPPORTED_ABI_VERSIONS)})"
        )
        return ProbeStatus(chosen, True, abi, frozenset(), everything, reason), None
    flags = getattr(module, "FEATURE_FLAGS", 0)
    have = frozenset(name for name, bit in FEATURES.items() if flags & bit)
    missing = everything - have
    reason = f"_retrace lacks: {', '.join(sorted(missing))}" if missing else ""
    return ProbeStatus(chosen, True, abi, have, missing, reason), module


_lock = threading.Lock()
_cached: tuple[ProbePolicy, ProbeStatus, ModuleType | None] | None = None


def status(*, refresh: bool = False) -> ProbeStatus:
    """Detect the probes under the current policy (cached per policy).

    Raises ``ProbesUnavailableError`` under ``require`` when anything is
    missing, and ``ValueError`` for an unknown ``RETRACE_PROBES`` value.
    """
    global _cached
    chosen = policy()
    with _lock:
        if refresh or _cached is None or _cached[0] is not chosen:
            result, module = _evaluate(chosen, _import_retrace())
            _cached = (chosen, result, module)
        result = _cached[1]
    if chosen is ProbePolicy.REQUIRE and result.missing:
        raise ProbesUnavailableError(
            f"{POLICY_ENV}=require but native probes are unavailable: {result.reason}"
        )
    return result


def _module_for(feature: str) -> ModuleType | None:
    result = status()
    if feature not in result.available:
        return None
    assert _cached is not None
    return _cached[2]


def thread_id() -> int:
    """The current thread's id: deterministic with the probes, else the OS ident."""
    module = _module_for("thread_ids")
    return module.thread_id() if module is not None else threading.get_ident()


def identity_hash(obj: object) -> int:
    """Identity hash of *obj*: deterministic with the probes, else address-based."""
    module = _module_for("identity_hash")
    return module.identity_hash(obj) if module is not None else object.__hash__(obj)


def root_seed() -> str | None:
    """The root seed this interpreter's thread ids derive from.

    ``None`` when the interpreter uses the default seed or has no thread-id
    probes.  On a patched interpreter this is what it actually read (the value
    of ``RETRACE_ROOT_SEED`` when its first thread id was handed out), not the
    current environment.
    """
    module = _module_for("thread_ids")
    if module is None:
        return None
    reader = getattr(module, "root_seed", None)
    if reader is None:  # an older runtime: it reads the variable at first use
        return os.environ.get(ROOT_SEED_ENV)
    return reader()


def application(fn: Callable[..., T]) -> Callable[..., T]:
    """*fn* made coordinate-visible (``_retrace.include``) when coordinates are in use.

    Retrace's command line runs transparent on a patched interpreter; the recorded program is
    re-entered through this, so its coordinates, thread ids and identity hashes do not depend
    on which engine code (record or replay) runs above it.
    """
    module = _module_for("coordinates")
    return fn if module is None else module.include(fn)


def describe() -> str:
    """One line saying which probes are in use and, if any are not, why."""
    result = status()
    if not result.missing:
        return f"native probes: all in use (ABI {result.abi_version})"
    used = ", ".join(sorted(result.available)) or "none"
    missing = ", ".join(sorted(result.missing))
    return f"native probes in use: {used}; unavailable: {missing} ({result.reason})"
