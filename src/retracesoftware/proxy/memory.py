"""In-memory recording backends: :class:`MemoryWriter` and :class:`MemoryReader`."""

from __future__ import annotations

from collections.abc import Iterable
from time import monotonic as _monotonic
from time import sleep as _sleep

from retracesoftware.utils import EventLog

from .protocol import ErrorValue, Event, EventKind

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

__all__ = ["MemoryReader", "MemoryWriter"]

_CALL = int(EventKind.CALL)
_RESULT = int(EventKind.RESULT)
_ERROR = int(EventKind.ERROR)
_CALLBACK = int(EventKind.CALLBACK)
_CALLBACK_RETURN = int(EventKind.CALLBACK_RETURN)
_CALLBACK_ERROR = int(EventKind.CALLBACK_ERROR)
_END = int(EventKind.END)
_THREAD = int(EventKind.THREAD)


class TupleWriter:
    """The ``Writer`` event methods, each turned into its event tuple for ``_put``.

    Subclasses decide where the tuples go by defining ``_put(event)``.
    """

    def _put(self, event: Event) -> None:
        raise NotImplementedError

    def call(self, thread: int, key: str, shape: str, digest: int) -> None:
        self._put((_CALL, thread, key, shape, digest))

    def result(self, thread: int, value: Any) -> None:
        self._put((_RESULT, thread, value))

    def error(self, thread: int, error: ErrorValue) -> None:
        self._put((_ERROR, thread, error))

    def callback(self, thread: int, ref: int, args: tuple[Any, ...], kwargs: dict) -> None:
        self._put((_CALLBACK, thread, ref, args, kwargs))

    def callback_return(self, thread: int) -> None:
        self._put((_CALLBACK_RETURN, thread))

    def callback_error(self, thread: int, error: ErrorValue) -> None:
        self._put((_CALLBACK_ERROR, thread, error))

    def end(self, thread: int) -> None:
        self._put((_END, thread))

    def thread(self, thread: int, child: int) -> None:
        self._put((_THREAD, thread, child))


class MemoryWriter(TupleWriter):
    """A :class:`~retracesoftware.proxy.protocol.Writer` that keeps events in a list."""

    def __init__(self) -> None:
        self.fast_log: EventLog | None = EventLog()

    @property
    def events(self) -> tuple[Event, ...]:
        """Every event written so far."""
        assert self.fast_log is not None
        return self.fast_log.events

    def reader(self) -> MemoryReader:
        """A reader over a snapshot of the events written so far."""
        return MemoryReader(self.events)

    def _put(self, event: Event) -> None:
        assert self.fast_log is not None
        self.fast_log.append(event)


class MemoryReader:
    """A :class:`~retracesoftware.proxy.protocol.Reader` over a sequence of events.

    Events must be tuples starting with an ``int`` kind and an ``int`` thread tag; anything
    else is rejected with :class:`ValueError` at construction.
    """

    #: Seconds a waiting thread sleeps between looks at the shared cursor.
    poll_interval = 0.0002

    def __init__(self, events: Iterable[Event]) -> None:
        items = list(events)
        last: dict[int, int] = {}
        for index, event in enumerate(items):
            if (
                not isinstance(event, tuple)
                or len(event) < 2
                or type(event[0]) is not int
                or type(event[1]) is not int
                or not _CALL <= event[0] <= _THREAD
            ):
                raise ValueError(f"event {index} is malformed: {event!r:.80}")
            last[event[1]] = index
        self._last = last
        self.fast_log: EventLog | None = EventLog(items)

    @property
    def position(self) -> int:
        assert self.fast_log is not None
        return self.fast_log.pos

    def remaining(self) -> int:
        """How many events have not been read yet."""
        assert self.fast_log is not None
        return len(self.fast_log) - self.fast_log.pos

    def next(self, thread: int, timeout: float) -> Event | None:
        log = self.fast_log
        assert log is not None
        deadline: float | None = None
        while True:
            if log.pos > self._last.get(thread, -1):
                return None
            if log.peek_thread() == thread:
                return log.take()
            now = _monotonic()
            if deadline is None:
                deadline = now + timeout
            elif now >= deadline:
                raise TimeoutError(
                    f"thread {thread} waited {timeout:g} s for its turn at event {log.pos}"
                )
            _sleep(self.poll_interval)
