"""The event vocabulary of a recording and the abstract ``Writer``/``Reader`` protocols.

A recording is one ordered sequence of events.  Every event is a tuple whose first two fields
are the event *kind* (:class:`EventKind`) and the *thread* tag (an ``int``: 0 for the thread that
started the run, then 1, 2, ... in the order the sandboxed program created threads).

=================  ==========================================  ====================================
kind               tuple                                       meaning
=================  ==========================================  ====================================
``CALL``           ``(1, thread, key, shape, digest)``         the program called out (int -> ext)
``RESULT``         ``(2, thread, value)``                      ...and the call returned ``value``
``ERROR``          ``(3, thread, error)``                      ...or raised (:class:`ErrorValue`)
``CALLBACK``       ``(4, thread, ref, args, kwargs)``          external code called back in
``CALLBACK_RETURN`` ``(5, thread)``                            ...the callback returned
``CALLBACK_ERROR`` ``(6, thread, error)``                      ...the callback raised
``END``            ``(7, thread)``                             the thread's sandboxed code finished
``THREAD``         ``(8, thread, child)``                      the thread started thread ``child``
=================  ==========================================  ====================================

``key`` (str) names the patched function, e.g. ``"time.time"`` or ``"_random.Random.random"``.
``shape`` (str) has one type code per positional argument, then ``,name=code`` per keyword
argument (codes: ``N`` None, ``b`` bool, ``i`` int, ``f`` float, ``c`` complex, ``s`` str, ``y``
bytes, ``t`` tuple, ``l`` list, ``d`` dict, ``S`` set, ``o`` bound object, ``F`` callback, ``?``
other).  ``digest`` is a 32-bit FNV-1a hash of the argument values (first 64 characters or bytes
of strings) and bound-object handles.  Key, shape and digest together are the call's
fingerprint: replay checks it before answering.

Values (``RESULT`` values, callback arguments, ``ErrorValue.args``) are plain data -- ``None``,
``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, ``tuple``, ``list``, ``dict``,
``set`` -- nested freely, plus the two registered types below: :class:`Handle` (an external
object bound to a small integer) and :class:`Loan` (an object the program itself passed out in
the arguments of an enclosing call, coming back).  Nothing in a recording is ever executed.
"""

from __future__ import annotations

import enum

from retracesoftware.utils import EventLog
from retracesoftware.utils._plain import FrozenRecord

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time

__all__ = [
    "ErrorValue",
    "Event",
    "EventKind",
    "Handle",
    "Loan",
    "Reader",
    "Writer",
    "describe",
]

if TYPE_CHECKING:
    from typing import Any
    from typing import Protocol as _Protocol

    Event = tuple[Any, ...]
else:
    Event = tuple  # tuple[Any, ...]


class _Structural(type):
    """``isinstance`` by the members an object has, as ``typing.runtime_checkable`` checks a
    ``Protocol`` (each method present and not ``None``, each attribute present).  Type checkers
    see :class:`Writer` and :class:`Reader` as ``typing.Protocol`` classes; at run time they are
    plain classes (``typing`` costs a noticeable part of start-up to import)."""

    _members: frozenset[str]

    def __init__(cls, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> None:
        super().__init__(name, bases, namespace)
        members = {n for n in namespace if not n.startswith("_")}
        members.update(namespace.get("__annotations__", ()))
        for base in bases:
            members.update(getattr(base, "_members", ()))
        cls._members = frozenset(members)

    def __instancecheck__(cls, instance: object) -> bool:
        if type.__instancecheck__(cls, instance):
            return True
        for name in cls._members:
            if not hasattr(instance, name):
                return False
            if callable(getattr(cls, name, None)) and getattr(instance, name) is None:
                return False
        return True


if not TYPE_CHECKING:

    class _Protocol(metaclass=_Structural):
        __slots__ = ()


class EventKind(enum.IntEnum):
    """The eight kinds of event."""

    CALL = 1
    RESULT = 2
    ERROR = 3
    CALLBACK = 4
    CALLBACK_RETURN = 5
    CALLBACK_ERROR = 6
    END = 7
    THREAD = 8


_set = object.__setattr__


class Handle(FrozenRecord):
    """An external object bound to ``id``; ``kind`` and ``new`` are set on first appearance.

    ``kind`` is ``"type:<module>.<qualname>"`` for an instance of a patched type and
    ``"proxy:<module>.<qualname>"`` for any other external object (replayed by a proxy).
    """

    __slots__ = _FIELDS = ("id", "kind", "new")
    id: int
    kind: str
    new: bool

    def __init__(self, id: int, kind: str = "", new: bool = False) -> None:
        _set(self, "id", id)
        _set(self, "kind", kind)
        _set(self, "new", new)

    def _fields(self) -> tuple[Any, ...]:
        return (self.id, self.kind, self.new)


class Loan(FrozenRecord):
    """An object the program itself passed out (lent) in the arguments of a call still in
    progress on the thread, coming back.  Each thread numbers the objects it lends 0, 1, 2, ...
    in program order."""

    __slots__ = _FIELDS = ("id",)
    id: int

    def __init__(self, id: int) -> None:
        _set(self, "id", id)

    def _fields(self) -> tuple[Any, ...]:
        return (self.id,)


class ErrorValue(FrozenRecord):
    """An exception that crossed the boundary.

    ``type`` is ``"<module>.<qualname>"``; ``args`` holds plain values (anything else is
    recorded as its ``repr``).  ``from_callback`` marks the exception that a callback raised
    and the external code let through: replay raises the replayed callback's own exception.
    """

    __slots__ = _FIELDS = ("type", "args", "from_callback")
    type: str
    args: tuple[Any, ...]
    from_callback: bool

    def __init__(self, type: str, args: tuple[Any, ...] = (), from_callback: bool = False) -> None:
        _set(self, "type", type)
        _set(self, "args", args)
        _set(self, "from_callback", from_callback)

    def _fields(self) -> tuple[Any, ...]:
        return (self.type, self.args, self.from_callback)


class Writer(_Protocol):
    """Where a recording goes.  One method per event kind; the System calls them in order.

    ``fast_log`` may be an :class:`~retracesoftware.utils.EventLog`: the System then appends
    the ``CALL``/``RESULT`` tuples of scalar-only calls to it directly (the native fast path)
    and only calls the methods for everything else.  Writers that are not memory-backed set it
    to ``None``.
    """

    fast_log: EventLog | None

    def call(self, thread: int, key: str, shape: str, digest: int) -> None: ...
    def result(self, thread: int, value: Any) -> None: ...
    def error(self, thread: int, error: ErrorValue) -> None: ...
    def callback(self, thread: int, ref: int, args: tuple[Any, ...], kwargs: dict) -> None: ...
    def callback_return(self, thread: int) -> None: ...
    def callback_error(self, thread: int, error: ErrorValue) -> None: ...
    def end(self, thread: int) -> None: ...
    def thread(self, thread: int, child: int) -> None: ...


class Reader(_Protocol):
    """Where a replay reads from.

    ``next(thread, timeout)`` returns the next event of the recording if it belongs to
    ``thread``, waiting up to ``timeout`` seconds for other threads to consume the events
    before it; it returns ``None`` when the recording holds no further event for ``thread``
    and raises :class:`TimeoutError` when the wait expires.  ``position`` is the index of
    the next event (used in divergence reports).  ``fast_log`` as for :class:`Writer`.
    """

    fast_log: EventLog | None

    @property
    def position(self) -> int: ...
    def next(self, thread: int, timeout: float) -> Event | None: ...


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(event: Event | None) -> str:
    """A one-line human description of *event* (used in divergence messages)."""
    if event is None:
        return "the end of the recording"
    try:
        kind = EventKind(event[0])
    except (ValueError, IndexError, TypeError):
        return f"a malformed event {_short(event)}"
    if kind is EventKind.CALL:
        return f"a call to {event[2]}({event[3]})"
    if kind is EventKind.RESULT:
        return f"a result {_short(event[2])}"
    if kind in (EventKind.ERROR, EventKind.CALLBACK_ERROR):
        err = event[2]
        what = "an exception" if kind is EventKind.ERROR else "a callback exception"
        return f"{what} {getattr(err, 'type', '?')}"
    if kind is EventKind.CALLBACK:
        return f"a callback (#{event[2]})"
    if kind is EventKind.CALLBACK_RETURN:
        return "a callback return"
    if kind is EventKind.THREAD:
        return f"the start of thread {event[2]}"
    return f"the end of thread {event[1]}"
