"""Standard input as a crossing: replay never reads the live standard input.

The ``stdin`` adapter replaces ``sys.stdin`` by :class:`RecordedStdin`, a text stream whose
reads go through the functions of :data:`calls` (patched as crossings ``sys.stdin.read``,
``sys.stdin.readline``, ``sys.stdin.isatty``): when recording they read the real standard input
and their results are recorded; on replay the recorded text is returned.  Its ``buffer`` is a
:class:`RecordedStdinBuffer`, whose binary reads are the crossings ``sys.stdin.buffer.read``,
``sys.stdin.buffer.read1`` and ``sys.stdin.buffer.readline`` (``readinto``, ``readlines`` and
iteration are built on them).  Neither has a ``fileno()``.
"""

from __future__ import annotations

import io
import sys
import types

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

__all__ = ["RecordedStdin", "RecordedStdinBuffer", "buffer_calls", "calls"]


def _read(size: int = -1) -> str:
    return _real().read(size)


def _readline(size: int = -1) -> str:
    return _real().readline(size)


def _isatty() -> bool:
    return _real().isatty()


def _buffer_read(size: int = -1) -> bytes:
    return _real_buffer().read(size)


def _buffer_read1(size: int = -1) -> bytes:
    return _real_buffer().read1(size)


def _buffer_readline(size: int = -1) -> bytes:
    return _real_buffer().readline(size)


#: The functions the adapter patches (owner of the crossings).
calls = types.SimpleNamespace(read=_read, readline=_readline, isatty=_isatty)
#: The same for the binary ``sys.stdin.buffer``.
buffer_calls = types.SimpleNamespace(
    read=_buffer_read, read1=_buffer_read1, readline=_buffer_readline
)
_REAL: list[Any] = []


def _real() -> Any:
    return _REAL[-1] if _REAL else sys.__stdin__


def _real_buffer() -> Any:
    buffer = getattr(_real(), "buffer", None)
    if buffer is None:
        raise io.UnsupportedOperation("standard input has no binary buffer")
    return buffer


class RecordedStdinBuffer(io.BufferedIOBase):
    """``sys.stdin.buffer`` while Retrace is installed (binary reads only; no ``fileno``)."""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return buffer_calls.read(-1 if size is None else size)

    def read1(self, size: int = -1) -> bytes:
        return buffer_calls.read1(-1 if size is None else size)

    def readline(self, size: int | None = -1) -> bytes:
        return buffer_calls.readline(-1 if size is None else size)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def readinto1(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read1(len(view))
        view[: len(data)] = data
        return len(data)

    def isatty(self) -> bool:
        return calls.isatty()


class RecordedStdin(io.TextIOBase):
    """``sys.stdin`` while Retrace is installed (no ``fileno``)."""

    def __init__(self, real: Any) -> None:
        super().__init__()
        self._encoding = getattr(real, "encoding", "utf-8")
        self._errors = getattr(real, "errors", "strict")
        self._buffer = RecordedStdinBuffer()

    @property
    def buffer(self) -> RecordedStdinBuffer:
        """The binary standard input (its reads are crossings too)."""
        return self._buffer

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
