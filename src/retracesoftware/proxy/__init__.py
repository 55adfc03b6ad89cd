"""The record/replay engine: pure logic, no I/O.

:class:`System` defines the sandbox boundary (patched functions and types, per-thread gates)
and runs a callable in record mode, writing every crossing through a
:class:`~retracesoftware.proxy.protocol.Writer`, or in replay mode, answering every crossing
from a :class:`~retracesoftware.proxy.protocol.Reader` and raising
:class:`ReplayDivergence` at the first call that does not match the recording.
:class:`MemoryWriter` / :class:`MemoryReader` keep a recording in memory.

This package depends on ``retracesoftware.functional`` and ``retracesoftware.utils`` only; it
never imports ``retracesoftware.stream``.  See ``docs/engine.md``.
"""

from __future__ import annotations

from .errors import EngineError, RecordedException, ReplayDivergence
from .memory import MemoryReader, MemoryWriter
from .protocol import ErrorValue, Event, EventKind, Handle, Loan, Reader, Writer, describe
from .proxytype import ExternalProxy, StubFactory, proxytype, unwrap
from .system import Mode, System, type_key

__all__ = [
    "EngineError",
    "ErrorValue",
    "Event",
    "EventKind",
    "ExternalProxy",
    "Handle",
    "Loan",
    "MemoryReader",
    "MemoryWriter",
    "Mode",
    "Reader",
    "RecordedException",
    "ReplayDivergence",
    "StubFactory",
    "System",
    "Writer",
    "describe",
    "proxytype",
    "type_key",
    "unwrap",
]
