"""Standard input as a crossing: replay never reads the live standard input.

The ``stdin`` adapter replaces ``sys.stdin`` by :class:`RecordedStdin`, a text stream whose
reads go through the functions of :data:`calls` (patched as crossings ``sys.stdin.read``,
``sys.stdin.readline``, ``sys.stdin.isatty``): when recording they read the real standard input
and their results are recorded; on replay the recorded text is returned.
"""

from __future__ import annotations

import io
import sys
import types
from typing import Any

__all__ = ["RecordedStdin", "calls"]


def _read(size: int = -1) -> str:
    return _real().read(size)


def _readline(size: int = -1) -> str:
    return _real().readline(size)


def _isatty() -> bool:
    return _real().isatty()


#: The functions the adapter patches (owner of the crossings).
calls = types.SimpleNamespace(read=_read, readline=_readline, isatty=_isatty)
_REAL: list[Any] = []


def _real() -> Any:
    return _REAL[-1] if _REAL else sys.__stdin__


class RecordedStdin(io.TextIOBase):
    """``sys.stdin`` while Retrace is installed (text reads only; no ``fileno``, no ``buffer``)."""

    def __init__(self, real: Any) -> None:
        super().__init__()
        self._encoding = getattr(real, "encoding", "utf-8")
        self._errors = getattr(real, "errors", "strict")

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding

    @property
    def errors(self) -> str:  # type: ignore[override]
        return self._errors

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        return calls.read(-1 if size is None else size)

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        return calls.readline(-1 if size is None else size)

    def isatty(self) -> bool:
        return calls.isatty()


def install_stdin() -> tuple[Any, RecordedStdin]:
    """Put a :class:`RecordedStdin` in ``sys.stdin``; return (previous, new)."""
    previous = sys.stdin
    _REAL.append(previous)
    wrapper = RecordedStdin(previous)
    sys.stdin = wrapper
    return previous, wrapper


def uninstall_stdin(previous: Any) -> None:
    sys.stdin = previous
    if _REAL:
        _REAL.pop()
