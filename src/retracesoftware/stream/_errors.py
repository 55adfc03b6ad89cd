"""Exception classes of :mod:`retracesoftware.stream` (raised by the native core too)."""

from __future__ import annotations

__all__ = [
    "CorruptError",
    "NotARecordingError",
    "StreamError",
    "TruncatedError",
    "UnknownTypeError",
    "UnsupportedTypeError",
    "UnsupportedVersionError",
]


class StreamError(Exception):
    """Base class of every error about reading or writing a recording.

    ``path`` is the file concerned (``None`` for in-memory data) and ``offset`` the byte offset
    the problem was found at (``None`` or ``-1`` when it has no position).
    """

    def __init__(self, message: str, *, path: str | None = None, offset: int | None = None):
        super().__init__(message)
        self.path = path
        self.offset = None if offset is None or offset < 0 else offset


class NotARecordingError(StreamError):
    """The file is not a Retrace recording at all (wrong magic number, empty file)."""


class UnsupportedVersionError(StreamError):
    """The recording uses a format major version this reader does not understand."""


class TruncatedError(StreamError):
    """The recording ends without its trailer: the writer was interrupted.

    Every event before the cut has already been returned by the reader when this is raised.
    """


class CorruptError(StreamError):
    """A checksum does not match or the data violates the format's structure."""


class UnsupportedTypeError(StreamError, TypeError):
    """A value of a type with no registered encoder was written."""


class UnknownTypeError(StreamError):
    """The recording holds a custom type whose name has no registered decoder."""
