"""The Retrace recording format: fast native writer and reader of values and events.

``stream`` knows *how* values and events are written to and read back from a recording, never
*why*.  The hot path (encoding and buffering) is C++ (``_stream``); this module adds the typed,
documented Python surface.  The format itself is specified in ``docs/format.md``.

    with Writer("run.retrace", metadata={"command": "demo"}) as w:
        w.write(time.time())
    with Reader("run.retrace") as r:
        for value in r:
            ...
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque, namedtuple
from collections.abc import Callable, Iterator, Mapping

from .._version import __version__ as _retrace_version
from . import _stream
from ._errors import (
    CorruptError,
    NotARecordingError,
    StreamError,
    TruncatedError,
    UnknownTypeError,
    UnsupportedTypeError,
    UnsupportedVersionError,
)

TYPE_CHECKING = False  # not `from typing import ...`: importing typing costs a lot here

if TYPE_CHECKING:  # typing, dataclasses, platform and uuid cost more to import than the rest
    from types import TracebackType
    from typing import Any, NamedTuple, Self

__all__ = [
    "FORMAT_VERSION",
    "MAX_DEPTH",
    "CorruptError",
    "Event",
    "Handle",
    "Header",
    "NotARecordingError",
    "Position",
    "Reader",
    "StreamError",
    "TruncatedError",
    "TypeRegistry",
    "UnknownTypeError",
    "UnsupportedTypeError",
    "UnsupportedVersionError",
    "Writer",
    "dumps",
    "loads",
    "register",
    "types",
]

#: ``(major, minor)`` version of the recording format this module writes.
FORMAT_VERSION: tuple[int, int] = (_stream.VERSION_MAJOR, _stream.VERSION_MINOR)
#: Deepest nesting of containers (and custom types) a value may have.
MAX_DEPTH: int = _stream.MAX_DEPTH

_VALUE_TYPES = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    bytearray,
    tuple,
    list,
    dict,
    set,
    frozenset,
)


class TypeRegistry:
    """Encoder/decoder pairs for types that are not built-in value types.

    An encoder turns an instance into a plain value (anything ``stream`` can write, including
    other registered types); the decoder rebuilds the instance from that value.  Types are
    matched exactly (a subclass needs its own registration) and named in the file by ``name``
    (default ``module.qualname``), so a reader needs a registry with the same names.
    """

    def __init__(self) -> None:
        self._encoders: dict[type, tuple[bytes, Callable[[Any], Any]]] = {}
        self._decoders: dict[str, Callable[[Any], Any]] = {}
        self._names: dict[type, str] = {}

    def register(
        self,
        cls: type,
        encode: Callable[[Any], Any],
        decode: Callable[[Any], Any],
        *,
        name: str | None = None,
    ) -> None:
        """Register ``encode``/``decode`` for exact instances of ``cls``."""
        if not isinstance(cls, type):
            raise TypeError(f"register() needs a type, not {cls!r}")
        if cls in _VALUE_TYPES:
            raise ValueError(f"{cls.__qualname__} is a built-in value type and cannot be hooked")
        if not callable(encode) or not callable(decode):
            raise TypeError("encode and decode must be callable")
        if name is None:
            name = f"{cls.__module__}.{cls.__qualname__}"
        if not isinstance(name, str) or not name:
            raise ValueError("the type name must be a non-empty str")
        owner = next((t for t, n in self._names.items() if n == name), None)
        if owner is not None and owner is not cls:
            raise ValueError(f"the name {name!r} is already registered for {owner!r}")
        old = self._names.get(cls)
        if old is not None and old != name:
            del self._decoders[old]
        self._names[cls] = name
        self._encoders[cls] = (name.encode("utf-8", "surrogatepass"), encode)
        self._decoders[name] = decode

    def unregister(self, cls: type) -> None:
        """Forget the hooks of ``cls`` (a ``KeyError`` if it has none)."""
        name = self._names.pop(cls)
        del self._encoders[cls]
        del self._decoders[name]

    def name_of(self, cls: type) -> str | None:
        """Return the name ``cls`` is registered under, or ``None``."""
        return self._names.get(cls)

    def copy(self) -> TypeRegistry:
        """Return an independent registry with the same hooks."""
        new = TypeRegistry()
        new._encoders = dict(self._encoders)
        new._decoders = dict(self._decoders)
        new._names = dict(self._names)
        return new


#: The process-wide default registry, used when no ``types=`` is given.
types = TypeRegistry()
#: Register hooks in the default registry (see :meth:`TypeRegistry.register`).
register = types.register


class _Frozen:
    """Immutable attributes (what ``dataclass(frozen=True)`` gives, without importing
    ``dataclasses``: this module is imported before a replay re-executes itself)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")


class Handle(_Frozen):
    """Stand-in a :class:`Reader` creates for a bound object when no ``on_bind`` is given.

    Every reference to the handle decodes to this same object (identity is preserved; handles
    compare by identity).
    """

    __slots__ = ("handle",)
    handle: int

    def __init__(self, handle: int) -> None:
        object.__setattr__(self, "handle", handle)

    def __repr__(self) -> str:
        return f"<Handle {self.handle}>"


if TYPE_CHECKING:

    class Position(NamedTuple):
        frame: int
        event: int
        offset: int

    class Event(NamedTuple):
        thread: int
        value: Any

else:
    Position = namedtuple("Position", "frame event offset", module=__name__)
    Position.__doc__ = (
        "Where the last event read came from: data frame index, event index, byte offset."
    )
    Event = namedtuple("Event", "thread value", module=__name__)
    Event.__doc__ = "One event with the logical thread that produced it."


class Header(_Frozen):
    """Metadata stored at the start of every recording (immutable; compares by value)."""

    _FIELDS = (
        "version",
        "recording_id",
        "created",
        "argv",
        "cwd",
        "python_implementation",
        "python_version",
        "platform",
        "retrace_version",
        "extra",
    )
    __slots__ = _FIELDS
    version: tuple[int, int]
    recording_id: str
    created: float
    argv: list[str]
    cwd: str
    python_implementation: str
    python_version: str
    platform: str
    retrace_version: str
    extra: dict[str, Any]

    def __init__(self, **fields: Any) -> None:
        if set(fields) != set(self._FIELDS):
            raise TypeError(f"Header() needs exactly the fields {', '.join(self._FIELDS)}")
        for name in self._FIELDS:
            object.__setattr__(self, name, fields[name])

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        body = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"Header({body})"


_HEADER_FIELDS: dict[str, type | tuple[type, ...]] = {
    "recording_id": str,
    "created": float,
    "argv": list,
    "cwd": str,
    "python_implementation": str,
    "python_version": str,
    "platform": str,
    "retrace_version": str,
    "extra": dict,
}


def _uuid4_hex() -> str:
    """``uuid.uuid4().hex`` (random, version 4) without importing ``uuid``."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return b.hex()


def _platform_name() -> str:
    """``platform.platform()`` as it reads on Linux when the processor name is blank (it is
    on glibc: ``uname -p`` says "unknown"), without running ``uname -p`` in a subprocess."""
    import platform

    uname = getattr(os, "uname", None)
    if uname is None:
        return platform.platform()
    system, _node, release, _version, machine = uname()
    if system != "Linux":
        return platform.platform()
    libc, version = platform.libc_ver()
    parts = [system, release, machine, *(["with", libc + version] if libc else [])]
    return "-".join(parts).replace(" ", "_").replace("/", "-")


def _make_header(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    import platform

    try:
        cwd = os.getcwd()
    except OSError:
        cwd = ""
    return {
        "recording_id": _uuid4_hex(),
        "created": time.time(),
        "argv": [str(a) for a in sys.argv],
        "cwd": cwd,
        "python_implementation": platform.python_implementation(),
        "python_version": platform.python_version(),
        "platform": _platform_name(),
        "retrace_version": _retrace_version,
        "extra": dict(metadata or {}),
    }


def _parse_header(raw: dict[str, Any], version: tuple[int, int], name: str) -> Header:
    for key, kind in _HEADER_FIELDS.items():
        if not isinstance(raw.get(key), kind):
            raise CorruptError(
                f"{name}: corrupt header at offset 12: expected the field {key!r} of type "
                f"{getattr(kind, '__name__', kind)}",
                path=name,
                offset=12,
            )
    fields = {k: raw[k] for k in _HEADER_FIELDS}
    return Header(version=version, **fields)


def dumps(value: Any, *, types: TypeRegistry | None = None) -> bytes:
    """Encode one value (with its own string table and identity memo) to bytes."""
    reg = types if types is not None else globals()["types"]
    return _stream.dumps(value, reg._encoders)


def loads(data: bytes | bytearray | memoryview, *, types: TypeRegistry | None = None) -> Any:
    """Decode bytes made by :func:`dumps`; raises :class:`StreamError` on any bad input."""
    reg = types if types is not None else globals()["types"]
    return _stream.loads(data, reg._decoders)


class Writer(_stream.Writer):
    """Write a recording file: header now, framed events as they come, trailer on close.

    ``write(value, thread=None)`` appends one event.  ``thread`` is the logical thread id; when
    omitted, the calling OS thread gets a small id in order of first appearance (0, 1, ...).
    ``bind(obj)`` gives ``obj`` a handle (returned) that later writes of ``obj`` refer to;
    ``unbind(obj)`` announces the handle is dead.  ``flush()`` hands buffered events to the OS.

    Events reach the OS at the latest ``flush_interval`` seconds after ``write`` returned (a
    native background thread flushes them, without the GIL), or as soon as ``frame_size``
    bytes are buffered.  ``close()`` writes the trailer and fsyncs.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        metadata: Mapping[str, Any] | None = None,
        types: TypeRegistry | None = None,
        flush_interval: float = 0.1,
        frame_size: int = 65536,
        intern_max_len: int = 64,
    ) -> None:
        reg = types if types is not None else globals()["types"]
        header = _make_header(metadata)
        try:
            _stream.dumps(header, {})
        except StreamError as exc:
            raise StreamError(f"metadata cannot be stored in the header: {exc}") from exc
        super().__init__(
            os.fsdecode(path), header, reg._encoders, flush_interval, frame_size, intern_max_len
        )
        self._header = _parse_header(header, FORMAT_VERSION, os.fsdecode(path))

    @property
    def header(self) -> Header:
        """The metadata written at the start of the file."""
        return self._header

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Reader(_stream.Reader):
    """Read a recording from a path or from bytes.

    Iterating yields event values in recorded order (all threads interleaved); the logical
    thread of the last value is :attr:`thread`.  The reader stops with :class:`TruncatedError`
    after the last complete frame of a recording whose writer never closed it, and with
    :class:`CorruptError` at the first damaged frame; every event before is returned first.

    ``on_bind(handle, thread)`` is called when the recording binds a handle and returns the
    object later references resolve to; by default a :class:`Handle` is created.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | bytes | bytearray | memoryview,
        *,
        types: TypeRegistry | None = None,
        on_bind: Callable[[int, int], Any] | None = None,
        name: str | None = None,
    ) -> None:
        reg = types if types is not None else globals()["types"]
        if isinstance(source, bytes | bytearray | memoryview):
            label = name if name is not None else "<bytes>"
        else:
            source = os.fsdecode(source)
            label = name if name is not None else source
        super().__init__(source, label, reg._decoders, on_bind, Handle)
        self._header = _parse_header(self.header_dict, self.version, label)
        self._pending: dict[int, deque[Any]] = {}

    @property
    def header(self) -> Header:
        """The recording's metadata."""
        return self._header

    @property
    def position(self) -> Position | None:
        """Frame index, event index and byte offset of the last event read (``None`` before)."""
        pos = self._position
        return None if pos is None else Position(*pos)

    def events(self) -> Iterator[Event]:
        """Yield the remaining events as ``(thread, value)`` pairs, interleaved."""
        while (event := self.next_event()) is not None:
            yield Event(*event)

    def iter_thread(self, thread: int) -> Iterator[Any]:
        """Yield the remaining values of one logical thread, skipping the others."""
        while (event := self.next_event()) is not None:
            if event[0] == thread:
                yield event[1]

    def next_for(self, thread: int) -> Any:
        """Return the next value of ``thread``, keeping other threads' values for them.

        This demultiplexes the recording for consumers that each follow one thread (as a
        replayer does): values of other threads met on the way are queued and returned by their
        own ``next_for`` calls, in order.  Raises ``EOFError`` when ``thread`` has no more values.
        Do not mix with plain iteration, which does not see queued values.
        """
        queue = self._pending.get(thread)
        if queue:
            return queue.popleft()
        while (event := self.next_event()) is not None:
            if event[0] == thread:
                return event[1]
            self._pending.setdefault(event[0], deque()).append(event[1])
        raise EOFError(f"no more events for thread {thread}")

    def threads(self) -> dict[int, list[Any]]:
        """Read the remaining events and return each thread's own sequence."""
        out: dict[int, list[Any]] = {}
        while (event := self.next_event()) is not None:
            out.setdefault(event[0], []).append(event[1])
        return out

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
