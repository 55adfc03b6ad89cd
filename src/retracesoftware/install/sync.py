"""Thread synchronisation as boundary events: the ``thread-sync`` adapter.

The engine orders boundary events across threads on replay, but a lock acquisition is not a
boundary event: two threads racing for a lock could take it in a different order on replay and
interleave their critical sections differently.  This adapter makes every synchronisation point
of the sandboxed program a crossing:

* ``_thread.allocate_lock`` / ``threading.Lock`` and ``threading.RLock`` return wrappers (only
  when called from sandboxed program code; the engine, the import system and threads outside
  the sandbox get the real objects).  ``acquire`` (and ``with``, ``locked()``, an RLock's
  ``_acquire_restore`` used by ``Condition.wait``) are crossings keyed by the lock's number,
  which is assigned in each thread's program order.  When recording, the real acquisition runs
  inside the crossing and its result is the lock's *ticket*: the number of acquisitions of that
  lock before this one (counted while holding it), or -1 when the acquisition failed.  On replay
  the crossing returns the recorded ticket and a successful acquisition then waits until every
  earlier ticket of the lock has been served before it takes the real lock (waiting at most
  ``System.timeout``), so critical sections run in the recorded order even when a thread loses
  the CPU between its crossing and the real acquisition.  ``release`` is not an event: it
  cannot block and its effect is ordered by the next acquisition.
* ``threading.Condition``, ``Event``, ``Semaphore``, ``Barrier`` and ``queue.Queue`` are built
  on these locks and need nothing more.
* ``Thread.join`` and ``Thread.is_alive`` record whether the thread was still running; when
  the recording says it had ended, replay waits until it really has.
* ``queue.SimpleQueue`` (a C type, used by ``concurrent.futures.ThreadPoolExecutor``) returns a
  wrapper whose ``put`` draws a sequence number (a crossing) and whose ``get`` records which
  number it received, so each item reaches the same consumer on replay.  ``qsize`` and
  ``empty`` are crossings too.

Locks created outside the sandbox (before the program started, or by modules imported before
it) stay unordered.
"""

from __future__ import annotations

import _queue
import _thread
import queue
import sys
import threading
import types
from time import monotonic as _monotonic

from retracesoftware.utils import GateState

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from .patching import Installation

__all__ = ["install_sync"]

_INSIDE = int(GateState.INSIDE)
_RECORD = 1
_SLICE = 0.05
_real_allocate_lock = _thread.allocate_lock
_real_rlock = _thread.RLock
_real_simple_queue = _queue.SimpleQueue
_IMPORT_SYSTEM = ("_frozen_importlib", "importlib")
_real_join = threading.Thread.join
_real_is_alive = threading.Thread.is_alive
_real_thread_init = threading.Thread.__init__
_ORDER = "_retrace_order"


def _thread_order(thread: threading.Thread) -> int:
    """The number given to a thread object created in the sandbox (-1 for others)."""
    order = thread.__dict__.get(_ORDER)
    return order if isinstance(order, int) else -1


class _Sync:
    """The adapter's state for one installation: crossings, lock numbers."""

    def __init__(self, install: Installation) -> None:
        system = install.system
        self.system = system
        self.gate = system.gate
        self.boundary = system.boundary
        self.tls = _thread._local()
        self.counters: dict[int, int] = {}
        calls = types.SimpleNamespace(
            acquire=self._t_acquire,
            restore=self._t_restore,
            locked=self._t_locked,
            put=self._t_put,
            get=self._t_get,
            qsize=self._t_qsize,
            empty=self._t_empty,
            join=self._t_join,
            alive=self._t_alive,
        )
        self.calls = calls
        for name, key in (
            ("acquire", "threading.Lock.acquire"),
            ("restore", "threading.RLock._acquire_restore"),
            ("locked", "threading.Lock.locked"),
            ("put", "queue.SimpleQueue.put"),
            ("get", "queue.SimpleQueue.get"),
            ("qsize", "queue.SimpleQueue.qsize"),
            ("empty", "queue.SimpleQueue.empty"),
            ("join", "threading.Thread.join"),
            ("alive", "threading.Thread.is_alive"),
        ):
            system.patch_function(calls, name, key=key)
            install.patched.append(key)

    # ----------------------------------------------------------------- helpers

    def active(self) -> bool:
        """True in sandboxed program code of a running record or replay."""
        return self.boundary.mode != 0 and self.gate.get() == _INSIDE

    def recording(self) -> bool:
        return self.boundary.mode == _RECORD

    def next_ident(self) -> int:
        tag = self.gate.tag
        n = self.counters.get(tag, 0)
        self.counters[tag] = n + 1
        return (tag << 32) | n

    def wait_real(self, acquire: Any, what: str) -> None:
        """Replay: take a real lock the recording says was taken; a divergence, not a hang,
        if it stays unavailable for the engine's timeout."""
        if acquire(False):
            return
        system = self.system
        deadline = _monotonic() + system.timeout
        while not acquire(True, _SLICE):
            if system.divergence is not None:
                raise system.divergence
            if _monotonic() >= deadline:
                system.diverge(
                    "thread", f"{what} to be free", f"waited {system.timeout:g} s for it"
                )

    # ------------------------------------------------- crossing targets (record)

    def _t_acquire(self, ident: int, blocking: Any, timeout: Any) -> int:
        lock = self.tls.lock
        if not lock._lock.acquire(blocking, timeout):
            return -1
        return lock.next_ticket()

    def _t_restore(self, ident: int) -> int:
        lock = self.tls.lock
        lock._lock._acquire_restore(self.tls.state)
        return lock.next_ticket()

    def _t_locked(self, ident: int) -> bool:
        return self.tls.lock.locked()

    def _t_put(self, ident: int) -> int:
        q = self.tls.queue
        with q._mutex:
            seq = q._next
            q._next = seq + 1
        return seq

    def _t_get(self, ident: int, block: Any, timeout: Any) -> int:
        seq, item = self.tls.queue._q.get(block, timeout)
        self.tls.item = item
        return seq if seq is not None else -1

    def _t_qsize(self, ident: int) -> int:
        return self.tls.queue._q.qsize()

    def _t_empty(self, ident: int) -> bool:
        return self.tls.queue._q.empty()

    def _t_join(self, ident: int, timeout: Any) -> bool:
        thread = self.tls.thread
        _real_join(thread, timeout)
        return _real_is_alive(thread)

    def _t_alive(self, ident: int) -> bool:
        return _real_is_alive(self.tls.thread)

    # ------------------------------------------------------------ operations

    def finish(self, thread: threading.Thread) -> None:
        """Replay: the recording says *thread* had ended: wait until it really has."""
        if not thread._started.is_set():
            return
        system = self.system
        deadline = _monotonic() + system.timeout
        while _real_is_alive(thread):
            _real_join(thread, _SLICE)
            if system.divergence is not None:
                raise system.divergence
            if _monotonic() >= deadline:
                system.diverge(
                    "thread", f"{thread.name} to have ended", f"waited {system.timeout:g} s"
                )

    def join(self, thread: threading.Thread, timeout: Any) -> None:
        self.tls.thread = thread
        alive = self.calls.join(_thread_order(thread), timeout)
        if not alive and not self.recording():
            self.finish(thread)

    def is_alive(self, thread: threading.Thread) -> bool:
        self.tls.thread = thread
        alive = self.calls.alive(_thread_order(thread))
        if not alive and not self.recording():
            self.finish(thread)
        return alive

    def acquire(self, lock: Lock, blocking: Any, timeout: Any) -> bool:
        if self.boundary.mode == _RECORD:
            self.tls.lock = lock
            return self.calls.acquire(lock._ident, blocking, timeout) >= 0
        ticket = self.calls.acquire(lock._ident, blocking, timeout)
        if ticket is not True and (type(ticket) is not int or ticket < 0):
            return False
        self.take(lock, ticket)
        return True

    def restore(self, lock: RLock, state: Any) -> None:
        if self.recording():
            self.tls.lock = lock
            self.tls.state = state
            self.calls.restore(lock._ident)
            return
        self.take(lock, self.calls.restore(lock._ident))
        count = state[0] if isinstance(state, tuple) and state else 1
        real = lock._lock
        for _ in range(int(count) - 1):  # re-entrant: immediate
            real.acquire()

    def take(self, lock: Lock, ticket: Any) -> None:
        """Replay: take *lock* as its acquisition number *ticket*, after all earlier ones
        (``True``, from a recording made before acquisitions were numbered: unordered)."""
        what = f"lock #{lock._ident:#x}"
        if type(ticket) is not int:
            self.wait_real(lock._lock.acquire, what)
            return
        turn = lock.turn(ticket)
        if turn is not None:
            self.wait_real(turn.acquire, f"{what} (acquisition {ticket})")
        self.wait_real(lock._lock.acquire, what)
        lock.served(ticket)

    def locked(self, lock: Any) -> bool:
        self.tls.lock = lock._lock
        return self.calls.locked(lock._ident)


_sync: _Sync | None = None
_turns_mutex = _real_allocate_lock()  # guards every lock's replay tickets (brief sections)


class Lock:
    """A program's ``threading.Lock``: acquisitions are ordered boundary events."""

    __slots__ = ("__weakref__", "_ident", "_lock", "_sync", "_tickets", "_turns")

    def __init__(self, sync: _Sync, ident: int) -> None:
        self._sync = sync
        self._ident = ident
        self._lock = self._make()
        self._tickets = 0  # record: acquisitions so far; replay: the next ticket to serve
        self._turns: dict[int, Any] | None = None  # replay: tickets waiting for their turn

    def next_ticket(self) -> int:
        """Record: number this acquisition (called while holding the real lock)."""
        ticket = self._tickets
        self._tickets = ticket + 1
        return ticket

    def turn(self, ticket: int) -> Any:
        """Replay: ``None`` when *ticket* is next, else a held lock released at its turn."""
        with _turns_mutex:
            if ticket <= self._tickets:
                return None
            turns = self._turns
            if turns is None:
                turns = self._turns = {}
            waiter = _real_allocate_lock()
            waiter.acquire()
            turns[ticket] = waiter
            return waiter

    def served(self, ticket: int) -> None:
        """Replay: *ticket* holds the lock; let the next one go."""
        with _turns_mutex:
            self._tickets = ticket + 1
            waiter = self._turns.pop(ticket + 1, None) if self._turns else None
        if waiter is not None:
            waiter.release()

    @staticmethod
    def _make() -> Any:
        return _real_allocate_lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        sync = self._sync
        if sync.boundary.mode and sync.gate.get() == _INSIDE:
            return sync.acquire(self, blocking, timeout)
        return self._lock.acquire(blocking, timeout)

    acquire_lock = acquire

    def __enter__(self) -> bool:
        sync = self._sync
        if sync.boundary.mode and sync.gate.get() == _INSIDE:
            return sync.acquire(self, True, -1)
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def release(self) -> None:
        self._lock.release()

    release_lock = release

    def locked(self) -> bool:
        sync = self._sync
        if sync.active():
            return sync.locked(self)
        return self._lock.locked()

    locked_lock = locked

    def _at_fork_reinit(self) -> None:
        self._lock._at_fork_reinit()

    def __getattr__(self, name: str) -> Any:
        if name == "_lock":
            raise AttributeError(name)
        return getattr(self._lock, name)

    def __repr__(self) -> str:
        return repr(self._lock)


class RLock(Lock):
    """A program's ``threading.RLock``: acquisitions are ordered boundary events."""

    __slots__ = ()

    @staticmethod
    def _make() -> Any:
        return _real_rlock()

    def _is_owned(self) -> bool:
        return self._lock._is_owned()

    def _release_save(self) -> Any:
        return self._lock._release_save()

    def _acquire_restore(self, state: Any) -> None:
        sync = self._sync
        if sync.active():
            sync.restore(self, state)
        else:
            self._lock._acquire_restore(state)

    def locked(self) -> bool:
        # RLock.locked() (3.14+) reports any owner; before, only the real object knows.
        return self._lock.locked()


class SimpleQueue:
    """A program's ``queue.SimpleQueue``: which consumer gets which item is recorded."""

    __class_getitem__ = classmethod(types.GenericAlias)

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        sync = _sync
        if sync is None or not sync.active() or cls is not SimpleQueue:
            return _real_simple_queue(*args, **kwargs)
        self = object.__new__(cls)
        self._sync = sync
        self._ident = sync.next_ident()
        self._q = _real_simple_queue()
        self._mutex = _real_allocate_lock()
        self._next = 0
        self._items: dict[int, Any] = {}
        self._waiters: dict[int, Any] = {}
        return self

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        sync = self._sync
        if not sync.active():
            self._q.put((None, item))
            return
        sync.tls.queue = self
        seq = sync.calls.put(self._ident)
        if sync.recording():
            self._q.put((seq, item))
            return
        with self._mutex:
            self._items[seq] = item
            waiter = self._waiters.pop(seq, None)
        if waiter is not None:
            waiter.release()

    def put_nowait(self, item: Any) -> None:
        self.put(item, False)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        sync = self._sync
        if not sync.active():
            return self._q.get(block, timeout)[1]
        sync.tls.queue = self
        seq = sync.calls.get(self._ident, block, timeout)
        if sync.recording():
            item = sync.tls.item
            sync.tls.item = None
            return item
        with self._mutex:
            if seq in self._items:
                return self._items.pop(seq)
            waiter = _real_allocate_lock()
            waiter.acquire()
            self._waiters[seq] = waiter
        sync.wait_real(waiter.acquire, f"item {seq} of queue #{self._ident:#x}")
        with self._mutex:
            return self._items.pop(seq)

    def get_nowait(self) -> Any:
        return self.get(False)

    def qsize(self) -> int:
        sync = self._sync
        if not sync.active():
            return self._q.qsize()
        sync.tls.queue = self
        return sync.calls.qsize(self._ident)

    def empty(self) -> bool:
        sync = self._sync
        if not sync.active():
            return self._q.empty()
        sync.tls.queue = self
        return sync.calls.empty(self._ident)


def _program_caller() -> bool:
    """True unless the lock is being created by the import system."""
    name = sys._getframe(2).f_globals.get("__name__", "")
    return not name.startswith(_IMPORT_SYSTEM)


def _native_identity_hashes() -> bool:
    """True on a patched CPython whose identity hashes are deterministic (``_retrace``).

    There a thread's or future's default hash is already the same on replay, so the
    ``__hash__`` overrides are not installed: they would cost a Python call per hash, and
    runtimes that forgot an identity hash at death only for types using the default hash kept
    the hashes their ``object.__hash__`` fallback made, for new objects at the same address to
    inherit (sets ordered differently in every run).
    """
    if "_retrace" not in sys.builtin_module_names:
        return False  # vanilla CPython: no need to import probes to find that out
    from retracesoftware.utils import probes

    return "identity_hash" in probes.status().available


def install_sync(install: Installation) -> None:
    """The ``thread-sync`` adapter: make locks and ``SimpleQueue`` hand-offs ordered events."""
    global _sync
    sync = _Sync(install)
    _sync = sync

    def allocate_lock() -> Any:
        if sync.active() and _program_caller():
            return Lock(sync, sync.next_ident())
        return _real_allocate_lock()

    def rlock(*args: Any, **kwargs: Any) -> Any:
        if sync.active() and not args and not kwargs and _program_caller():
            return RLock(sync, sync.next_ident())
        return _real_rlock(*args, **kwargs)

    allocate_lock.__doc__ = _real_allocate_lock.__doc__
    install._set_module(_thread, "allocate_lock", allocate_lock)
    if hasattr(_thread, "allocate"):
        install._set_module(_thread, "allocate", allocate_lock)
    install._set_module(threading, "_allocate_lock", allocate_lock)
    install._set_module(threading, "Lock", allocate_lock)
    install._set_module(threading, "_CRLock", rlock)
    install._set_module(queue, "SimpleQueue", SimpleQueue)

    def join(self: threading.Thread, timeout: float | None = None) -> None:
        if sync.active():
            sync.join(self, timeout)
        else:
            _real_join(self, timeout)

    def is_alive(self: threading.Thread) -> bool:
        if sync.active():
            return sync.is_alive(self)
        return _real_is_alive(self)

    def __init__(self: threading.Thread, *args: Any, **kwargs: Any) -> None:
        _real_thread_init(self, *args, **kwargs)
        if sync.active():
            self.__dict__[_ORDER] = sync.next_ident()

    def __hash__(self: threading.Thread) -> int:
        # Sets of threads (ThreadPoolExecutor._threads) iterate in hash order: make it the
        # creation order, not the memory address, so joins replay in the recorded order.
        order = self.__dict__.get(_ORDER)
        return hash(order) if order is not None else object.__hash__(self)

    install._set_type(threading.Thread, "__init__", __init__)
    if not _native_identity_hashes():
        install._set_type(threading.Thread, "__hash__", __hash__)
    join.__doc__ = _real_join.__doc__
    is_alive.__doc__ = _real_is_alive.__doc__
    install._set_type(threading.Thread, "join", join)
    install._set_type(threading.Thread, "is_alive", is_alive)

    def forget() -> None:
        global _sync
        if _sync is sync:
            _sync = None

    install._finalizers.append(forget)


def _lock_order(future: Any) -> tuple[int, int]:
    """A deterministic sort key for a future: the number of its condition's lock."""
    lock = getattr(getattr(future, "_condition", None), "_lock", None)
    ident = getattr(lock, "_ident", None)
    return (0, ident) if isinstance(ident, int) else (1, id(future))


def install_futures_order(install: Installation) -> None:
    """The ``futures-lock-order`` adapter.

    ``concurrent.futures`` acquires several futures' locks (``wait``, ``as_completed``) in the
    order of their ``id()``, and keeps futures in sets, whose order follows their identity
    hashes: both depend on memory addresses, which differ on replay.  Sort by lock number
    instead (still one global order, so still free of deadlocks), and hash a future created
    in the sandbox by its lock number (equality stays identity).
    """
    from concurrent.futures import _base

    cls = _base._AcquireFutures
    original = cls.__init__

    def __init__(self: Any, futures: Any) -> None:
        original(self, futures)
        self.futures = sorted(self.futures, key=_lock_order)

    install._set_type(cls, "__init__", __init__)

    def __hash__(self: Any) -> int:
        key = _lock_order(self)
        return hash(key[1]) if key[0] == 0 else object.__hash__(self)

    if not _native_identity_hashes():
        install._set_type(_base.Future, "__hash__", __hash__)
