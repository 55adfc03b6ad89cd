"""The sandbox boundary: patching, recording and replaying crossings."""

from __future__ import annotations

import builtins
import enum
import functools
import itertools
import os
import sys
import types
from _weakref import ref as _weakref  # the real type: install may replace weakref.ref
from collections.abc import Callable
from time import monotonic as _monotonic
from time import sleep as _sleep

from retracesoftware import utils
from retracesoftware.utils import (
    Boundary,
    Crossing,
    Gate,
    GateState,
    StackFactory,
    set_type_attribute,
)

from .errors import EngineError, RecordedException, ReplayDivergence
from .fingerprint import fingerprint
from .protocol import ErrorValue, Event, EventKind, Handle, Loan, Reader, Writer, describe
from .proxytype import (
    PROXY_OPERATION,
    ExternalProxy,
    StubFactory,
    make_proxy,
    proxytype,
    unwrap,
)

__all__ = ["Mode", "System"]

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")

_INSIDE = int(GateState.INSIDE)
_OUTSIDE = int(GateState.OUTSIDE)
_DISABLED = int(GateState.DISABLED)
_CALL = int(EventKind.CALL)
_RESULT = int(EventKind.RESULT)
_ERROR = int(EventKind.ERROR)
_CALLBACK = int(EventKind.CALLBACK)
_CALLBACK_RETURN = int(EventKind.CALLBACK_RETURN)
_CALLBACK_ERROR = int(EventKind.CALLBACK_ERROR)
_END = int(EventKind.END)
_THREAD = int(EventKind.THREAD)

_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_SCALAR_SET = frozenset(_SCALARS)
_SCALAR_BASES = (bool, int, float, complex, str, bytes)  # in order: bool before int
_MISSING = object()
_CALLBACK_TYPES = (types.FunctionType, types.MethodType, functools.partial)
_ENGINE_DIRS = (
    os.path.dirname(os.path.abspath(__file__)) + os.sep,
    os.path.dirname(os.path.abspath(utils.__file__)) + os.sep,
)
_u64 = (1 << 64) - 1
_WAIT_SLICE = 0.05  # seconds between checks for a divergence while waiting for a turn


class Mode(enum.IntEnum):
    """What a :class:`System` is doing."""

    OFF = 0
    RECORD = 1
    REPLAY = 2


_RECORD = Mode.RECORD  # module constants: attribute lookups on an Enum class are slow


def type_key(cls: type) -> str:
    """``"<module>.<qualname>"`` of *cls*."""
    return f"{cls.__module__}.{cls.__qualname__}"


class _ThreadState:
    """Per-thread numbering of loans, handles and callbacks."""

    __slots__ = ("callback_exc", "loans", "next_callback", "next_handle", "next_loan")

    def __init__(self) -> None:
        self.loans: list[tuple[int, list[Any]]] = []  # (first id, objects)
        self.next_loan = 0
        self.next_handle = 0
        self.next_callback = 0
        self.callback_exc: BaseException | None = None


class _Patch:
    """One attribute the System replaced (restored by ``uninstall``)."""

    __slots__ = ("had_own", "is_type", "name", "original", "owner")

    def __init__(self, owner: Any, name: str, had_own: bool, original: Any, is_type: bool) -> None:
        self.owner = owner
        self.name = name
        self.had_own = had_own
        self.original = original
        self.is_type = is_type


class _Callback:
    """An internal callable lent to external code: calls back in are recorded / replayed."""

    __slots__ = ("__weakref__", "fn", "ref", "system")

    def __init__(self, system: System, ref: int, fn: Callable[..., Any]) -> None:
        self.system = system
        self.ref = ref
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.system._run_callback(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<callback #{self.ref} {self.fn!r}>"


class System:
    """The sandbox boundary and the record/replay engine.

    Patch the functions and types that reach the outside world (:meth:`patch_function`,
    :meth:`patch_type`), then run a callable with :meth:`record` or :meth:`replay`.  Only the
    thread that runs it (and threads started through :meth:`thread`) is sandboxed; elsewhere
    patched functions behave exactly as the originals.  :meth:`uninstall` (or leaving a
    ``with System() as system:`` block) restores every patched attribute.

    *timeout* bounds how long a replaying thread waits for its turn (then: a divergence).
    Frames in *adapter_dirs* (directories of code that wraps crossings for the program, like
    the engine's own) are skipped when a divergence names the program's location.
    """

    def __init__(self, *, timeout: float = 10.0, adapter_dirs: tuple[str, ...] = ()) -> None:
        self.timeout = timeout
        self.gate = Gate()
        self.boundary = Boundary(
            self.gate, self._slow, self._record_result, self._record_error, self._replay_result
        )
        self.stubs = StubFactory(self)
        self.proxy_type = proxytype(self)
        self._stack = StackFactory(
            skip=_ENGINE_DIRS
            + tuple(os.path.abspath(d).rstrip(os.sep) + os.sep for d in adapter_dirs)
        )
        self._patches: list[_Patch] = []
        self._patched_types: dict[type, str] = {}
        self._bound_types: tuple[type, ...] = ()  # the keys of _patched_types (cached)
        # type -> (scalar base or None, type_key, "proxy:" + type_key, is a proxy type,
        # is a patched type or a subclass of one), filled by _encode, emptied by patch_type
        self._type_info: dict[type, tuple[Any, ...]] = {}
        self._exceptions: dict[str, type[BaseException]] = {}
        self._mode = Mode.OFF
        self._writer: Writer | None = None
        self._reader: Reader | None = None
        self._permanent: dict[int, Callable[..., Any]] = {}  # ref -> fn (see callback())
        self._deferred: list[tuple[int, Callable[[], Any]]] = []
        self._reset()

    # ------------------------------------------------------------------ state

    def _reset(self) -> None:
        self.boundary.unbind_all()
        self._thread_ids = itertools.count(1)
        # id(real) and id(program) -> (real, handle, program); for a proxy, program is a weak
        # reference: a proxy the program has dropped releases its binding (see _release)
        self._bound: dict[int, tuple[Any, int, Any]] = {}
        self._objects: dict[int, Any] = {}  # handle -> program object (or weakref to a proxy)
        self._run = getattr(self, "_run", 0) + 1  # releases from an earlier run are ignored
        self._callbacks: dict[int, Callable[..., Any]] = dict(self._permanent)
        self._deferred.clear()
        self._live: set[int] = set()  # tags of threads running in the sandbox
        self._threads: dict[int, _ThreadState] = {}
        self._divergence: ReplayDivergence | None = None
        # thread tag -> {(type key, name): is a method} (see proxytype.ProxyMethod)
        self._method_kinds: dict[int, dict[tuple[str, str], bool]] = {}

    @property
    def mode(self) -> Mode:
        """``Mode.OFF`` outside :meth:`record` / :meth:`replay`."""
        return self._mode

    @property
    def divergence(self) -> ReplayDivergence | None:
        """The first divergence of the current or last replay, if any."""
        return self._divergence

    def _thread_state(self, tag: int) -> _ThreadState:
        state = self._threads.get(tag)
        if state is None:
            state = self._threads[tag] = _ThreadState()
        return state

    # --------------------------------------------------------------- patching

    def _crossing(self, target: Any, key: str) -> Crossing:
        if not callable(target):
            raise EngineError(f"cannot patch {key}: {type(target).__name__} is not callable")
        return Crossing(target, key, self.boundary)

    def _owned(self, value: Any) -> bool:
        return isinstance(value, Crossing) and value.boundary is self.boundary

    def patch_function(self, owner: Any, name: str, *, key: str | None = None) -> Crossing:
        """Replace ``owner.name`` (a module function or a callable attribute) by a crossing.

        Idempotent: patching the same attribute again returns the existing crossing.  Allowed
        while the System runs (a module imported by the program is patched then); a call
        already in progress through the old attribute finishes unrecorded.
        """
        current = getattr(owner, name)
        if self._owned(current):
            return current
        if key is None:
            prefix = owner.__name__ if isinstance(owner, types.ModuleType) else type_key(owner)
            key = f"{prefix}.{name}"
        crossing = self._crossing(current, key)
        had_own = name in getattr(owner, "__dict__", {})
        is_type = isinstance(owner, type)
        if is_type:
            set_type_attribute(owner, name, crossing)
        else:
            setattr(owner, name, crossing)
        self._patches.append(_Patch(owner, name, had_own, current, is_type))
        return crossing

    def patch_type(
        self,
        cls: type,
        methods: list[str] | tuple[str, ...] | None = None,
        *,
        stub: Callable[[type], Any] | None = None,
    ) -> list[str]:
        """Patch the methods of *cls* in place (C types included) and bind its instances.

        *methods* defaults to every public method and C-level attribute (getset or member
        descriptor: reading it becomes a crossing) defined in ``cls.__dict__``, plus
        ``__init__`` (so that replay never initialises a real instance).  Instances of *cls*
        that cross the boundary are bound to handles; on replay, those the recording
        introduces are made by ``stub(cls)`` (default: ``cls.__new__(cls)``).  Returns the
        names patched.  Idempotent; allowed while the System runs (for a class whose instances
        have not crossed yet: a module the program has just imported).
        """
        if not isinstance(cls, type):
            raise EngineError(f"patch_type expects a class, not {type(cls).__name__}")
        key = type_key(cls)
        if methods is None:
            names = [
                n
                for n, v in cls.__dict__.items()
                if (not n.startswith("_") or n == "__init__")
                and (_is_method(v) or _is_native_attribute(v))
            ]
        else:
            names = list(methods)
            for n in names:
                v = cls.__dict__.get(n)
                if v is None or not (_is_method(v) or _is_native_attribute(v)):
                    raise EngineError(f"{key}.{n} is not a method defined by {key}")
        for n in names:
            original = cls.__dict__[n]
            if self._owned(original) or self._owned(getattr(original, "fget", None)):
                continue
            if _is_native_attribute(original):
                # A C-level attribute (getset or member): reading it is a crossing; writing it
                # goes straight to the real descriptor.
                getter = self._crossing(original.__get__, f"{key}.{n}")
                setter = getattr(original, "__set__", None)
                deleter = getattr(original, "__delete__", None)
                replacement: Any = property(getter, setter, deleter, original.__doc__)
            else:
                replacement = self._crossing(original, f"{key}.{n}")
            set_type_attribute(cls, n, replacement)
            self._patches.append(_Patch(cls, n, True, original, True))
        self._patched_types[cls] = key
        self._bound_types = tuple(self._patched_types)
        self._type_info.clear()  # (subclasses too) classified before it was patched
        if stub is not None:
            self.stubs.register(cls, stub)
        return names

    def callback(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """A permanent callback: *fn* wrapped so that calls to it from external code (gate
        ``OUTSIDE``) are recorded as callbacks and replayed, without lending it to a crossing.

        Its number is fixed when this is called (negative numbers, in registration order), so
        register the same callbacks in the same order when recording and replaying.
        """
        ref = -1 - len(self._permanent)
        self._permanent[ref] = fn
        self._callbacks[ref] = fn
        return _Callback(self, ref, fn)

    def defer(self, fn: Callable[[], Any]) -> None:
        """Record mode: call *fn* (typically a :meth:`callback` wrapper) at the calling thread's
        next crossing, after its ``CALL`` event and before the real function runs, with the gate
        ``OUTSIDE``: callbacks it makes are recorded inside that crossing and replayed there."""
        if self._mode is not _RECORD:
            raise EngineError("System.defer is only available while recording")
        self._deferred.append((self.gate.tag, fn))
        self.boundary.diverged = True  # every crossing takes the slow path until delivered

    def _run_deferred(self, tag: int) -> None:
        mine = [fn for t, fn in self._deferred if t == tag]
        if not mine:
            return
        self._deferred[:] = [(t, fn) for t, fn in self._deferred if t != tag]
        if not self._deferred and self._divergence is None:
            self.boundary.diverged = False
        for fn in mine:
            fn()

    def diverge(self, kind: str, expected: str, actual: str) -> None:
        """Replay: report a divergence on the calling thread (raises :class:`ReplayDivergence`)."""
        self._diverge(self.gate.tag, kind, expected, actual)

    def register_exception(self, cls: type[BaseException]) -> None:
        """Let replay raise *cls* (types in ``builtins`` and already-imported modules are
        found without registration)."""
        self._exceptions[type_key(cls)] = cls

    def uninstall(self) -> None:
        """Undo every patch, newest first.  Idempotent."""
        self._check_idle("uninstall")
        while self._patches:
            p = self._patches.pop()
            if p.is_type:
                if p.had_own:
                    set_type_attribute(p.owner, p.name, p.original)
                else:
                    set_type_attribute(p.owner, p.name)
            elif p.had_own or not hasattr(type(p.owner), p.name):
                setattr(p.owner, p.name, p.original)
            else:
                delattr(p.owner, p.name)
        self._patched_types.clear()
        self._bound_types = ()

    @property
    def installed(self) -> bool:
        """True while at least one patch is in place."""
        return bool(self._patches)

    def __enter__(self) -> System:
        return self

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    def _check_idle(self, what: str) -> None:
        if self._mode is not Mode.OFF:
            raise EngineError(f"cannot {what} while the System is running ({self._mode.name})")

    # ---------------------------------------------------------------- running

    def record(self, writer: Writer, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in the sandbox, recording every crossing to *writer*.

        Threads started with :meth:`thread` must finish before *fn* returns.
        """
        if not isinstance(writer, Writer):
            raise EngineError(f"record needs a Writer, not {type(writer).__name__}")
        _check_callable(fn)
        self._start(Mode.RECORD)
        self._writer = writer
        self.boundary.log = _fast_log(writer)
        try:
            with self.gate.scope(_INSIDE, 0):
                return fn(*args, **kwargs)
        finally:
            with self.gate.scope(_DISABLED):
                writer.end(0)
            self._stop()

    def replay(self, reader: Reader, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in the sandbox, answering crossings from *reader*.

        Raises :class:`ReplayDivergence` at the first call that does not match the recording
        (also when the program swallowed it, and when the program ends early).
        """
        if not isinstance(reader, Reader):
            raise EngineError(f"replay needs a Reader, not {type(reader).__name__}")
        _check_callable(fn)
        self._start(Mode.REPLAY)
        self._reader = reader
        self.boundary.log = _fast_log(reader)
        try:
            try:
                with self.gate.scope(_INSIDE, 0):
                    result = fn(*args, **kwargs)
            except ReplayDivergence:
                raise
            except BaseException as exc:
                if self._divergence is not None:
                    raise self._divergence from exc
                raise
            if self._divergence is not None:
                raise self._divergence
            with self.gate.scope(_DISABLED, 0):
                self._expect_end(0)
            return result
        finally:
            if self._divergence is not None:
                self._await_threads(1.0)
            self._stop()

    def _await_threads(self, limit: float) -> None:
        """After a divergence: give the program's other threads up to *limit* seconds to reach
        a crossing (which raises the divergence) and end, before the patches come off."""
        deadline = _monotonic() + limit
        with self.gate.scope(_DISABLED):
            while self._live and _monotonic() < deadline:
                _sleep(0.005)

    def _start(self, mode: Mode) -> None:
        self._check_idle("start")
        self._reset()
        self._mode = mode
        self.boundary.diverged = False
        self.boundary.mode = int(mode)

    def _stop(self) -> None:
        self._type_info.clear()
        self.boundary.mode = 0
        self.boundary.log = None
        self._mode = Mode.OFF
        self._writer = None
        self._reader = None
        self.boundary.unbind_all()
        self._bound.clear()
        self._objects.clear()
        self._callbacks.clear()

    def thread(self, fn: Callable[..., T]) -> Callable[..., T]:
        """Wrap the target of a new thread so that it runs in the sandbox.

        Call it from sandboxed code.  The new thread's tag is recorded (a ``THREAD`` event on
        the creating thread) and read back on replay, so every thread gets the same tag in both
        runs whatever order threads create threads in.
        """
        if self._mode is Mode.OFF or self.gate.get() != _INSIDE:
            raise EngineError("System.thread must be called from sandboxed code")
        parent = self.gate.tag
        with self.gate.scope(_DISABLED):
            if self._mode is Mode.RECORD:
                assert self._writer is not None
                tag = next(self._thread_ids)
                self._writer.thread(parent, tag)
            else:
                if self._divergence is not None:
                    raise self._divergence
                index, event = self._read(parent)
                if event is None or event[0] != _THREAD or type(event[2]) is not int:
                    self._diverge(parent, "extra call", describe(event), "started a thread", index)
                assert event is not None
                tag = event[2]

        def run(*args: Any, **kwargs: Any) -> T:
            self._live.add(tag)
            try:
                with self.gate.scope(_INSIDE, tag):
                    return fn(*args, **kwargs)
            finally:
                self._live.discard(tag)
                with self.gate.scope(_DISABLED, tag):
                    if self._mode is Mode.RECORD and self._writer is not None:
                        self._writer.end(tag)
                    elif self._mode is Mode.REPLAY and self._divergence is None:
                        self._expect_end(tag)

        run.__name__ = getattr(fn, "__name__", "run")
        run.__qualname__ = getattr(fn, "__qualname__", "run")
        return run

    # ------------------------------------------------------ binding and values

    def resolve_bound_type(self, name: str) -> type:
        """The patched type (or subclass of one) called *name*; never imports anything."""
        for cls in self._patched_types:
            stack = [cls]
            while stack:
                c = stack.pop()
                if type_key(c) == name:
                    return c
                stack.extend(c.__subclasses__())
        raise EngineError(f"the recording refers to type {name!r}, which is not patched")

    def _is_bound_type(self, obj: Any) -> bool:
        return isinstance(obj, self._bound_types) if self._bound_types else False

    def _bind(self, real: Any, program: Any) -> tuple[int, bool]:
        entry = self._bound.get(id(real))
        if entry is not None:
            if type(entry[2]) is not _weakref or entry[2]() is not None:
                return entry[1], False
            del self._bound[id(real)]  # its proxy is dying: its release is on the way
        tag = self.gate.tag
        state = self._threads.get(tag) or self._thread_state(tag)
        handle = (tag << 32) | state.next_handle  # _ident(tag, n)
        state.next_handle += 1
        if program is not real:  # a proxy: bound while the program holds it
            self._bind_proxy(handle, program, real)
        else:
            self._bind_object(handle, real)
        return handle, True

    def _bind_object(self, handle: int, obj: Any) -> None:
        """Bind *obj* (its own program object: an instance of a patched type, a stand-in for
        one) to *handle* for the rest of the run; the binding keeps it alive."""
        self._bound[id(obj)] = (obj, handle, obj)
        self.boundary.bind(obj, handle)
        self._objects[handle] = obj

    def _bind_proxy(self, handle: int, proxy: Any, real: Any) -> None:
        """Bind *proxy* (and *real*, the object behind it when recording) to *handle* until
        the program drops the proxy: long runs do not keep every file or socket they ever
        used.  Record and replay drop a proxy at the same point of the program (it holds the
        same references in both), except for garbage in reference cycles, whose collection
        time differs; a handle whose proxy is gone is answered with a fresh stand-in."""
        ids = (id(proxy),) if real is None else (id(proxy), id(real))
        ref = _weakref(proxy, functools.partial(self._release, self._run, handle, ids))
        entry = (real, handle, ref)
        for key in ids:
            self._bound[key] = entry
        self.boundary.bind(proxy, handle)
        if real is not None:
            self.boundary.bind(real, handle)
        self._objects[handle] = ref

    def _release(self, run: int, handle: int, ids: tuple[int, ...], _ref: Any) -> None:
        """A proxy died: forget its binding (unless a later run has started)."""
        if run != self._run:
            return
        for key in ids:
            entry = self._bound.get(key)
            if entry is not None and entry[1] == handle:
                del self._bound[key]
                self.boundary.unbind(key)
        if type(self._objects.get(handle)) is _weakref:
            del self._objects[handle]

    def _program_object(self, handle: int, tag: int, state: _ThreadState) -> Any:
        """Replay: the program's object for a handle the recording says it already has."""
        obj = self._objects.get(handle, _MISSING)
        if type(obj) is _weakref:
            obj = obj()
            if obj is not None:
                return obj
        elif obj is not _MISSING:
            return obj
        owner = self._threads.get(handle >> 32)
        if owner is None or (handle & 0xFFFFFFFF) >= owner.next_handle:
            self._diverge(tag, "values", f"external object #{handle}", "never saw it")
        # Its proxy was collected here before it was in the recorded run (garbage in a
        # reference cycle): the program cannot reach the old one, so a new one stands in.
        stand_in = self.stubs("proxy:?")
        self._bind_proxy(handle, stand_in, None)
        return stand_in

    def _classify(self, obj: Any) -> tuple[str, bytes] | None:
        if type(obj) in _SCALAR_SET:
            return None
        if isinstance(obj, _Callback):
            return "F", (obj.ref & _u64).to_bytes(8, "little")
        entry = self._bound.get(id(obj))
        if entry is None and (isinstance(obj, ExternalProxy) or self._is_bound_type(obj)):
            self._bind(obj, obj)
            entry = self._bound[id(obj)]
        if entry is not None:
            return "o", entry[1].to_bytes(8, "little")
        return None

    def _lend(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple, dict, list, bool]:
        """Wrap callables as callbacks; list the internal objects lent to external code.

        The last item is true when the arguments are plain data (nothing lent, no proxies).
        """
        loans: list[Any] = []
        if _plain_values(args) and (not kwargs or _plain_values(kwargs.values())):
            return args, kwargs, loans, True

        def lend(value: Any, depth: int) -> Any:
            t = type(value)
            if t in _SCALAR_SET:
                return value
            if isinstance(value, _CALLBACK_TYPES) and not isinstance(value, Crossing):
                state = self._thread_state(self.gate.tag)
                ref = _ident(self.gate.tag, state.next_callback)
                state.next_callback += 1
                wrapper = _Callback(self, ref, value)
                self._callbacks[ref] = value
                loans.append(wrapper)
                return wrapper
            if t in (tuple, list) and depth < 4:
                for item in value:
                    lend(item, depth + 1)
                return value
            if t is dict and depth < 4:
                for item in value.values():
                    lend(item, depth + 1)
                return value
            if isinstance(value, ExternalProxy) or self._is_bound_type(value):
                return value
            loans.append(value)
            return value

        new_args = tuple([lend(a, 0) for a in args])
        new_kwargs = {k: lend(v, 0) for k, v in kwargs.items()} if kwargs else kwargs
        return new_args, new_kwargs, loans, False

    def _loan_of(self, value: Any, state: _ThreadState) -> Loan | None:
        for base, frame in reversed(state.loans):
            for index, item in enumerate(frame):
                if item is value:
                    return Loan(base + index)
        return None

    def _push_loans(self, state: _ThreadState, loans: list[Any]) -> None:
        """Open the loan frame of a call (ids count lent objects in program order, per thread)."""
        state.loans.append((state.next_loan, loans))
        state.next_loan += len(loans)

    def _encode(self, value: Any, state: _ThreadState, depth: int = 0) -> tuple[Any, Any]:
        """(recorded form, object for the program) of a value coming from external code."""
        t = type(value)
        if t in _SCALAR_SET:
            return value, value
        if depth < 32:
            if t is tuple or t is list:
                recorded_items = []
                program_items = []
                for item in value:
                    if type(item) in _SCALAR_SET:
                        recorded_items.append(item)
                        program_items.append(item)
                    else:
                        r, p = self._encode(item, state, depth + 1)
                        recorded_items.append(r)
                        program_items.append(p)
                if t is tuple:
                    return tuple(recorded_items), tuple(program_items)
                return recorded_items, program_items
            if t is dict and _all_scalar(value):
                recorded_map = {}
                program_map = {}
                for k, v in value.items():
                    recorded_map[k], program_map[k] = self._encode(v, state, depth + 1)
                return recorded_map, program_map
            if t is set and _all_scalar(value):
                return set(value), set(value)
        if state.loans:
            loan = self._loan_of(value, state)
            if loan is not None:
                return loan, value
        info = self._type_info.get(t)
        if info is None:
            info = self._type_info[t] = (
                *_type_info(t),
                issubclass(t, ExternalProxy),
                bool(self._bound_types) and issubclass(t, self._bound_types),
            )
        base = info[0]
        if base is not None:  # a subclass of a scalar type: record (and return) the scalar
            plain = base(value)
            return plain, plain
        entry = self._bound.get(id(value))
        if entry is not None:
            program = entry[2]
            if type(program) is _weakref:
                program = program()
            if program is not None:
                return _handle(entry[1]), program
        if info[3]:  # a proxy
            handle, _ = self._bind(value, value)
            return _handle(handle, "proxy:?", True), value
        if info[4]:  # an instance of a patched type
            handle, _ = self._bind(value, value)
            return _handle(handle, "type:" + info[1], True), value
        proxy = make_proxy(self.proxy_type, value, info[1])
        handle, _ = self._bind(value, proxy)
        return _handle(handle, info[2], True), proxy

    def _decode(self, value: Any, state: _ThreadState, tag: int, depth: int = 0) -> Any:
        """The object a recorded value stands for, on replay."""
        t = type(value)
        if t in _SCALAR_SET:
            return value
        if depth < 32:
            if t is tuple or t is list:
                items = []
                for v in value:
                    items.append(
                        v if type(v) in _SCALAR_SET else self._decode(v, state, tag, depth + 1)
                    )
                return tuple(items) if t is tuple else items
            if t is dict:
                return {
                    self._decode(k, state, tag, depth + 1): self._decode(v, state, tag, depth + 1)
                    for k, v in value.items()
                }
            if t is set:
                return {self._decode(v, state, tag, depth + 1) for v in value}
        if t is Handle:
            if value.new:
                expected = _ident(tag, state.next_handle)
                if value.id != expected:
                    self._diverge(
                        tag,
                        "values",
                        f"a new external object #{value.id}",
                        f"would bind #{expected} next",
                    )
                stand_in = self.stubs(value.kind)
                state.next_handle += 1
                if isinstance(stand_in, ExternalProxy):
                    self._bind_proxy(value.id, stand_in, None)
                else:
                    self._bind_object(value.id, stand_in)
                return stand_in
            return self._program_object(value.id, tag, state)
        if t is Loan:
            for base, frame in state.loans:
                if base <= value.id < base + len(frame):
                    return frame[value.id - base]
            self._diverge(tag, "values", f"lent object #{value.id}", "lent no such object")
        raise EngineError(f"the recording holds a value of unsupported type {t.__name__}")

    def _encode_error(self, exc: BaseException, state: _ThreadState) -> ErrorValue:
        if exc is state.callback_exc:
            return ErrorValue(type_key(type(exc)), (), True)
        args = []
        raw = exc.args
        if isinstance(exc, OSError) and exc.filename is not None and len(raw) == 2:
            # OSError keeps its file names outside ``args``: record the full
            # constructor arguments so the replayed error names the same file.
            raw = (*raw, exc.filename, None, exc.filename2)
        for a in raw:
            try:
                recorded, _ = self._encode_plain(a)
            except TypeError:
                recorded = repr(a)
            args.append(recorded)
        return ErrorValue(type_key(type(exc)), tuple(args))

    def _encode_plain(self, value: Any, depth: int = 0) -> tuple[Any, None]:
        t = type(value)
        if t in _SCALAR_SET:
            return value, None
        if (t is tuple or t is list) and depth < 8:
            return t(self._encode_plain(v, depth + 1)[0] for v in value), None
        raise TypeError

    def _resolve_exception(self, name: str) -> type[BaseException] | None:
        if name in self._exceptions:
            return self._exceptions[name]
        module_name, _, qualname = name.rpartition(".")
        candidates = [(module_name, qualname)]
        # nested qualnames (a.b.C.D): try every split point
        parts = name.split(".")
        candidates += [(".".join(parts[:i]), ".".join(parts[i:])) for i in range(1, len(parts))]
        for mod_name, qual in candidates:
            module = builtins if mod_name == "builtins" else sys.modules.get(mod_name)
            if module is None:
                continue
            obj: Any = module
            for part in qual.split("."):
                obj = getattr(obj, part, None)
                if obj is None:
                    break
            if isinstance(obj, type) and issubclass(obj, BaseException):
                return obj
        return None

    def _decode_error(self, error: Any, state: _ThreadState, tag: int) -> BaseException:
        if type(error) is not ErrorValue:
            raise EngineError(f"the recording holds a malformed error {type(error).__name__}")
        if error.from_callback:
            if state.callback_exc is None:
                self._diverge(tag, "callback", "a callback's exception", "raised none")
            exc = state.callback_exc
            assert exc is not None
            return exc
        args = tuple(self._decode(a, state, tag) for a in error.args)
        cls = self._resolve_exception(error.type)
        if cls is not None:
            try:
                return cls(*args)
            except Exception:
                pass
        return RecordedException(error.type, args)

    # ------------------------------------------------------------- divergence

    def _location(self) -> tuple[str, int, str] | None:
        frames = self._stack(limit=1)
        return frames[0] if frames else None

    def _diverge(self, tag: int, kind: str, expected: str, actual: str, index: int = -1) -> None:
        if self._divergence is not None:
            raise self._divergence
        if index < 0 and self._reader is not None:
            index = self._reader.position
        self._divergence = ReplayDivergence(
            index=index,
            thread=tag,
            kind=kind,
            expected=expected,
            actual=actual,
            location=self._location(),
        )
        self.boundary.diverged = True
        raise self._divergence

    def _read(self, tag: int) -> tuple[int, Event | None]:
        reader = self._reader
        assert reader is not None
        wait = min(_WAIT_SLICE, self.timeout)
        try:
            event = reader.next(tag, wait)
        except TimeoutError:
            event = self._read_slowly(reader, tag, wait)
        if event is None:
            return reader.position, None
        return reader.position - 1, event

    def _read_slowly(self, reader: Reader, tag: int, wait: float) -> Event | None:
        """Keep waiting for this thread's turn, giving up on a divergence or the timeout."""
        deadline = _monotonic() + self.timeout - wait
        while True:
            if self._divergence is not None:  # another thread diverged: stop waiting
                raise self._divergence
            if _monotonic() >= deadline:
                self._diverge(
                    tag,
                    "thread",
                    f"other threads to reach event {reader.position}",
                    f"waited {self.timeout:g} s for its turn",
                )
            try:
                return reader.next(tag, wait)
            except TimeoutError:
                continue

    def _expect_end(self, tag: int) -> None:
        index, event = self._read(tag)
        if event is not None and event[0] != _END:
            self._diverge(tag, "missing call", describe(event), "finished without making it", index)

    # -------------------------------------------------------------- crossings

    def _slow(self, crossing: Crossing, args: tuple[Any, ...], kwargs: dict | None) -> Any:
        """Every crossing the native fast path does not handle."""
        gate = self.gate
        tag = gate.tag
        previous = gate.set(_DISABLED)
        try:
            if self._divergence is not None:
                raise self._divergence
            kwargs = kwargs or {}
            state = self._threads.get(tag) or self._thread_state(tag)
            args, kwargs, loans, plain = self._lend(args, kwargs)
            shape, digest = fingerprint(args, kwargs, self._classify, self.boundary)
            if self._mode is _RECORD:
                return self._record_call(
                    crossing, args, kwargs, loans, plain, shape, digest, tag, state
                )
            return self._replay_call(crossing, loans, shape, digest, tag, state)
        finally:
            gate.set(previous)

    def _record_call(
        self,
        crossing: Crossing,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        loans: list[Any],
        plain: bool,
        shape: str,
        digest: int,
        tag: int,
        state: _ThreadState,
    ) -> Any:
        writer = self._writer
        assert writer is not None
        writer.call(tag, crossing.key, shape, digest)
        real_args, real_kwargs = args, kwargs
        if not plain and crossing.info is not PROXY_OPERATION:  # proxy ops unwrap themselves
            real_args = tuple([unwrap(a) for a in args])
            if kwargs:
                real_kwargs = {k: unwrap(v) for k, v in kwargs.items()}
        self._push_loans(state, loans)
        self.gate.set(_OUTSIDE)
        try:
            if self._deferred:
                self._run_deferred(tag)
            result = crossing.target(*real_args, **real_kwargs)
        except BaseException as exc:
            self.gate.set(_DISABLED)
            state.loans.pop()
            writer.error(tag, self._encode_error(exc, state))
            state.callback_exc = None
            raise
        self.gate.set(_DISABLED)
        try:
            recorded, program = self._encode(result, state)
        finally:
            state.loans.pop()
        state.callback_exc = None
        writer.result(tag, recorded)
        return program

    def _replay_call(
        self,
        crossing: Crossing,
        loans: list[Any],
        shape: str,
        digest: int,
        tag: int,
        state: _ThreadState,
    ) -> Any:
        key = crossing.key
        index, event = self._read(tag)
        if event is None or event[0] != _CALL or event[2] != key or event[3] != shape:
            actual = f"called {key}({shape})"
            if event is None or event[0] != _CALL:
                kind = "function" if event is not None and event[0] == _THREAD else "extra call"
            else:
                kind = "function" if event[2] != key else "arguments"
            self._diverge(tag, kind, describe(event), actual, index)
        assert event is not None
        if event[4] != digest:
            actual = f"called {key}({shape})"
            self._diverge(
                tag,
                "values",
                f"{describe(event)} with argument digest {event[4]:#010x}",
                f"{actual} with argument digest {digest:#010x}",
                index,
            )
        self._push_loans(state, loans)
        try:
            while True:
                index, event = self._read(tag)
                kind = event[0] if event is not None else None
                if kind == _RESULT:
                    assert event is not None
                    value = self._decode(event[2], state, tag)
                    state.callback_exc = None
                    return value
                if kind == _ERROR:
                    assert event is not None
                    exc = self._decode_error(event[2], state, tag)
                    state.callback_exc = None
                    raise exc
                if kind == _CALLBACK:
                    assert event is not None
                    self._replay_callback(event, state, tag, index)
                    continue
                self._diverge(
                    tag,
                    "malformed",
                    f"{describe(event)} (after a call)",
                    f"awaits the outcome of {key}",
                    index,
                )
        finally:
            state.loans.pop()

    def _replay_callback(self, event: Event, state: _ThreadState, tag: int, index: int) -> None:
        ref = event[2]
        fn = self._callbacks.get(ref) if type(ref) is int else None
        if fn is None:
            self._diverge(
                tag, "callback", f"a callback to #{ref!r}", "lent no such callable", index
            )
        assert fn is not None
        args = self._decode(event[3], state, tag)
        kwargs = self._decode(event[4], state, tag)
        if type(args) is not tuple or type(kwargs) is not dict:
            raise EngineError("the recording holds a malformed callback event")
        raised: BaseException | None = None
        self.gate.set(_INSIDE)
        try:
            fn(*args, **kwargs)
        except ReplayDivergence:
            raise
        except BaseException as exc:
            raised = exc
        finally:
            self.gate.set(_DISABLED)
        index, end = self._read(tag)
        end_kind = end[0] if end is not None else None
        if end_kind == _CALLBACK_RETURN:
            if raised is not None:
                self._diverge(
                    tag,
                    "callback",
                    "the callback to return",
                    f"raised {type(raised).__name__} in it",
                    index,
                )
        elif end_kind == _CALLBACK_ERROR:
            if raised is None:
                self._diverge(tag, "callback", "the callback to raise", "returned from it", index)
            state.callback_exc = raised
        else:
            self._diverge(
                tag,
                "missing call",
                describe(end),
                "returned from a callback without making it",
                index,
            )

    def _run_callback(self, callback: _Callback, args: tuple, kwargs: dict) -> Any:
        gate = self.gate
        if gate.get() != _OUTSIDE or self._mode is not _RECORD or self._writer is None:
            return callback.fn(*args, **kwargs)
        writer = self._writer
        tag = gate.tag
        gate.set(_DISABLED)
        state = self._thread_state(tag)
        try:
            recorded_args, program_args = self._encode(tuple(args), state)
            recorded_kwargs, program_kwargs = self._encode(dict(kwargs), state)
            writer.callback(tag, callback.ref, recorded_args, recorded_kwargs)
            gate.set(_INSIDE)
            try:
                result = callback.fn(*program_args, **program_kwargs)
            except BaseException as exc:
                gate.set(_DISABLED)
                writer.callback_error(tag, self._encode_error(exc, state))
                state.callback_exc = exc
                raise
            gate.set(_DISABLED)
            writer.callback_return(tag)
            return result
        finally:
            gate.set(_OUTSIDE)

    def _record_result(self, crossing: Crossing, value: Any) -> Any:
        """Native record path: the call returned something other than a plain scalar."""
        gate = self.gate
        previous = gate.set(_DISABLED)
        try:
            tag = gate.tag
            state = self._threads.get(tag) or self._thread_state(tag)
            recorded, program = self._encode(value, state)
            assert self._writer is not None
            self._writer.result(tag, recorded)
            return program
        finally:
            gate.set(previous)

    def _replay_result(self, crossing: Crossing, value: Any) -> Any:
        """Native replay path: the call matched its recorded ``CALL`` and was answered by a
        ``RESULT`` that is not plain data (an external object...); decode it."""
        gate = self.gate
        previous = gate.set(_DISABLED)
        try:
            tag = gate.tag
            state = self._threads.get(tag) or self._thread_state(tag)
            state.callback_exc = None
            if type(value) is Handle and not value.new:  # an object the program already has
                return self._program_object(value.id, tag, state)
            return self._decode(value, state, tag)
        finally:
            gate.set(previous)

    def _record_error(self, crossing: Crossing, exc: BaseException) -> None:
        """Native record path: the call raised."""
        gate = self.gate
        previous = gate.set(_DISABLED)
        try:
            tag = gate.tag
            state = self._thread_state(tag)
            assert self._writer is not None
            self._writer.error(tag, self._encode_error(exc, state))
            state.callback_exc = None
        finally:
            gate.set(previous)


_new_handle = Handle.__new__
_set_handle_id = Handle.id.__set__  # type: ignore[attr-defined]
_set_handle_kind = Handle.kind.__set__  # type: ignore[attr-defined]
_set_handle_new = Handle.new.__set__  # type: ignore[attr-defined]


def _handle(ident: int, kind: str = "", new: bool = False) -> Handle:
    """``Handle(ident, kind, new)``, without the frozen ``__init__``'s ``object.__setattr__``."""
    handle = _new_handle(Handle)
    _set_handle_id(handle, ident)
    _set_handle_kind(handle, kind)
    _set_handle_new(handle, new)
    return handle


def _type_info(cls: type) -> tuple[type | None, str, str]:
    base = next((b for b in _SCALAR_BASES if issubclass(cls, b)), None)
    name = type_key(cls)
    return base, name, "proxy:" + name


def _check_callable(fn: Any) -> None:
    if not callable(fn):
        raise EngineError(f"expected a callable to run, not {type(fn).__name__}")


def _ident(tag: int, n: int) -> int:
    """A handle or callback number: unique per run, assigned in each thread's program order."""
    return (tag << 32) | n


def _plain_values(values: Any) -> bool:
    """True when every value is a scalar or a tuple/list of scalars (nothing to lend)."""
    for value in values:
        t = type(value)
        if t in _SCALAR_SET or ((t is tuple or t is list) and _all_scalar(value)):
            continue
        return False
    return True


def _all_scalar(items: Any) -> bool:
    """True when every element of a tuple, list or set (every key of a dict) is a scalar."""
    for item in items:  # noqa: SIM110 - a plain loop is faster than all() over a genexp
        if type(item) not in _SCALAR_SET:
            return False
    return True


def _is_native_attribute(value: Any) -> bool:
    return isinstance(value, (types.GetSetDescriptorType, types.MemberDescriptorType))


def _is_method(value: Any) -> bool:
    return isinstance(
        value,
        (
            types.FunctionType,
            types.MethodDescriptorType,
            types.WrapperDescriptorType,
            types.BuiltinFunctionType,
            Crossing,
        ),
    )


def _fast_log(backend: Any) -> utils.EventLog | None:
    log = getattr(backend, "fast_log", None)
    return log if isinstance(log, utils.EventLog) else None
