"""Adapters between the recording format (``stream``) and the engine protocols (``proxy``).

:func:`stream_writer` turns a :class:`retracesoftware.stream.Writer` into a
:class:`retracesoftware.proxy.Writer`: every engine event is written as one stream value (the
event tuple) on the event's logical thread.  :func:`stream_reader` reads a recording back into
a :class:`retracesoftware.proxy.Reader`.  The engine's value types (``Handle``, ``Loan``,
``ErrorValue``) are stored through registered type hooks whose decoders only check and rebuild
plain data: nothing from a recording is ever imported or executed.

Besides engine events a recording holds *install records*: tuples whose first item is a
``str`` tag (``"retrace.exit"``...) written by the install layer; the reader returns them
separately in :attr:`RecordingReader.records` and never gives them to the engine.
"""

from __future__ import annotations

import _thread
import os
from operator import attrgetter
from time import sleep as _sleep

from retracesoftware import stream
from retracesoftware.proxy import ErrorValue, Handle, Loan, MemoryReader
from retracesoftware.proxy.memory import TupleWriter
from retracesoftware.proxy.protocol import EventKind
from retracesoftware.utils import EventLog
from retracesoftware.utils._plain import Record

from .errors import MalformedRecordingError

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "RecordingReader",
    "StreamEventWriter",
    "engine_types",
    "stream_reader",
    "stream_writer",
]

_CALL = int(EventKind.CALL)
_THREAD = int(EventKind.THREAD)


_new_handle = Handle.__new__
_set_handle_id = Handle.id.__set__  # type: ignore[attr-defined]
_set_handle_kind = Handle.kind.__set__  # type: ignore[attr-defined]
_set_handle_new = Handle.new.__set__  # type: ignore[attr-defined]


def _decode_handle(value: Any) -> Handle:
    if type(value) is tuple and len(value) == 3:
        ident, kind, new = value
        if type(ident) is int and type(kind) is str and type(new) is bool:
            # The slots directly: this runs for every handle in a recording.
            handle = _new_handle(Handle)
            _set_handle_id(handle, ident)
            _set_handle_kind(handle, kind)
            _set_handle_new(handle, new)
            return handle
    raise ValueError(f"malformed engine handle {value!r:.60}")


def _decode_loan(value: Any) -> Loan:
    if type(value) is not int:
        raise ValueError(f"malformed engine loan {value!r:.60}")
    return Loan(value)


def _decode_error(value: Any) -> ErrorValue:
    if (
        not isinstance(value, tuple)
        or len(value) != 3
        or type(value[0]) is not str
        or type(value[1]) is not tuple
        or type(value[2]) is not bool
    ):
        raise ValueError(f"malformed engine error value {value!r:.60}")
    return ErrorValue(value[0], value[1], value[2])


def engine_types() -> stream.TypeRegistry:
    """A type registry with the engine's value types (``retrace.Handle``, ``retrace.Loan``,
    ``retrace.Error``) registered; decoders only validate and rebuild plain data."""
    reg = stream.TypeRegistry()
    # attrgetter: the encoders run natively (one per handle written), same values as
    # ``lambda h: (h.id, h.kind, h.new)``.
    reg.register(Handle, attrgetter("id", "kind", "new"), _decode_handle, name="retrace.Handle")
    reg.register(Loan, attrgetter("id"), _decode_loan, name="retrace.Loan")
    reg.register(
        ErrorValue,
        lambda e: (e.type, tuple(e.args), e.from_callback),
        _decode_error,
        name="retrace.Error",
    )
    return reg


class StreamEventWriter(TupleWriter):
    """A :class:`retracesoftware.proxy.Writer` over a :class:`retracesoftware.stream.Writer`.

    Events go first to ``fast_log``, an :class:`~retracesoftware.utils.EventLog` (so the
    engine's native fast path appends plain-data calls without entering Python), and are moved
    to the stream, in order, by :meth:`drain` -- natively: the stream writer takes them out of
    the log through the log's C interface (``Writer.write_log``), so no event tuple is built in
    Python.  That happens at every event the engine writes through a method, and every
    ``drain_interval`` seconds in a background thread (outside the sandbox, not a
    :mod:`threading` thread; it only takes the GIL to look when the interval has passed).  With
    the stream's own ``flush_interval`` an event is on disk at most ``drain_interval +
    flush_interval`` after it happened, so a killed program leaves a readable, truncated
    recording.  Call :meth:`stop` before closing ``out``.
    """

    def __init__(self, out: stream.Writer, *, drain_interval: float = 0.05) -> None:
        self.out = out
        self.fast_log: EventLog | None = EventLog()
        self._log = self.fast_log
        self._write = out.write
        self._write_log = out.write_log
        self._stopped = False
        self._interval = drain_interval
        if drain_interval > 0:
            _thread.start_new_thread(self._drainer, ())

    def _drainer(self) -> None:
        log = self._log
        while not self._stopped:
            _sleep(self._interval)
            if not self._stopped and len(log):
                try:
                    self.drain()
                except Exception:  # the stream failed (disk full...): the next write reports it
                    return

    def drain(self) -> None:
        """Write every event appended so far to the stream, in order (the log is emptied)."""
        self._write_log(self._log)

    def stop(self) -> None:
        """Stop the background drain and write the remaining events."""
        self._stopped = True
        self.drain()

    def _put(self, event: tuple[Any, ...]) -> None:
        self._log.append(event)  # written by the next drain, like the fast path's events

    def record(self, tag: str, value: Any, thread: int = 0) -> None:
        """Write an install record ``(tag, value)`` (not an engine event) after the events."""
        self.drain()
        self._write((tag, value), thread)


def stream_writer(
    path: str | os.PathLike[str],
    *,
    metadata: dict[str, Any] | None = None,
    flush_interval: float = 0.1,
    drain_interval: float = 0.05,
) -> StreamEventWriter:
    """Create a recording at *path* (mode ``0600``) and return the engine writer over it.

    Close it with ``writer.stop()`` then ``writer.out.close()``.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    out = stream.Writer(
        path, metadata=metadata, types=engine_types(), flush_interval=flush_interval
    )
    return StreamEventWriter(out, drain_interval=drain_interval)


class _LogReader(MemoryReader):
    """A :class:`MemoryReader` over an :class:`EventLog` filled (and checked) natively."""

    def __init__(self, log: EventLog, ends: dict[int, int]) -> None:
        log.pos = 0
        self._last = ends
        self.fast_log = log


class RecordingReader(Record):
    """A whole recording, read and checked: header, engine events, install records.

    The engine events are held natively in ``log`` (an :class:`EventLog`); ``events`` gives
    them as tuples.  :meth:`reader` is a :class:`retracesoftware.proxy.MemoryReader` over them
    (positioned at the first event; readers share the log, so use one at a time).
    ``truncated`` is the :class:`retracesoftware.stream.TruncatedError` if the file ended
    without its trailer (the recorded program was killed), in which case the log holds every
    complete event before the cut.
    """

    __slots__ = _FIELDS = ("header", "log", "records", "record_order", "truncated", "size")

    def __init__(
        self,
        header: stream.Header,
        log: EventLog,
        records: dict[str, Any] | None = None,
        record_order: list[str] | None = None,
        truncated: stream.TruncatedError | None = None,
        size: int = 0,
    ) -> None:
        self.header = header
        self.log = log
        self.records: dict[str, Any] = {} if records is None else records
        self.record_order: list[str] = [] if record_order is None else record_order
        self.truncated = truncated
        self.size = size

    @property
    def count(self) -> int:
        """The number of engine events."""
        return len(self.log)

    @property
    def events(self) -> tuple[tuple[Any, ...], ...]:
        """Every engine event, as a tuple ``(kind, thread, *fields)``."""
        return self.log.events

    def reader(self) -> MemoryReader:
        """An engine reader positioned at the first event."""
        return _LogReader(self.log, self.log.thread_ends())


def stream_reader(path: str | os.PathLike[str], *, require: str | None = None) -> RecordingReader:
    """Read the recording at *path*.

    Raises ``OSError`` if it cannot be opened, a :class:`retracesoftware.stream.StreamError`
    subclass if it is not a recording, has an unsupported version or is corrupt (a truncated
    file is *not* an error: see :attr:`RecordingReader.truncated`), and
    :class:`retracesoftware.stream.CorruptError` if an event does not have the engine's shape.
    With *require*, a header whose metadata lacks that key raises
    :class:`~retracesoftware.install.errors.MalformedRecordingError` before any event is read.
    The events are decoded, checked and stored natively (``stream.Reader.fill_log``); only
    install records and malformed events come back to Python.
    """
    name = os.fsdecode(path)
    size = os.stat(path).st_size
    log = EventLog()
    records: dict[str, Any] = {}
    order: list[str] = []
    truncated: stream.TruncatedError | None = None
    with stream.Reader(path, types=engine_types()) as src:
        header = src.header
        if require is not None and require not in header.extra:
            raise MalformedRecordingError(
                "the file is a stream recording but not a recorded program (no program metadata)"
            )
        fill = src.fill_log
        try:
            while (other := fill(log, _CALL, _THREAD)) is not None:
                value = other[1]
                if (
                    type(value) is tuple
                    and len(value) == 2
                    and type(value[0]) is str
                    and value[0].startswith("retrace.")
                ):
                    records[value[0]] = value[1]
                    order.append(value[0])
                    continue
                raise stream.CorruptError(
                    f"{name}: event {len(log)} is not an engine event: {value!r:.60}",
                    path=name,
                    offset=src.position.offset if src.position else 0,
                )
        except stream.TruncatedError as exc:
            truncated = exc
    return RecordingReader(header, log, records, order, truncated, size)
