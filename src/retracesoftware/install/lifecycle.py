"""Signals, ``atexit`` handlers and finalizers: the ``signals``, ``atexit`` and ``finalizers``
adapters (see ``docs/capture-lifecycle.md``).

* **Signals.**  Python runs a signal handler in the main thread, between two bytecodes, at a
  point that depends on when the signal arrived.  The adapter installs its own handler
  (``_catch``) for every handler the program sets (and for ``SIGINT``'s default, which raises
  ``KeyboardInterrupt``).  When recording, a signal that arrives while a crossing is running
  (``os.kill``, ``time.sleep``, a lock wait...) runs the program's handler at once as a
  recorded callback of that crossing; one that arrives while program code runs is deferred to
  the main thread's next crossing and runs, as a recorded callback, inside it (after its
  ``CALL`` event, before the real function).  Replay runs the handler inside the same crossing,
  and no real signal is needed (``os.kill``, ``signal.alarm``, ``setitimer``... are crossings).
* **atexit.**  Handlers registered by sandboxed code are kept by Retrace and run, last
  registered first, at the end of the program inside the sandbox (after its threads have been
  joined), so their output and crossings are recorded and replayed.  An exception in one is
  printed as Python does ("Exception ignored in atexit callback") and does not change the
  exit status.
* **Finalizers.**  The cyclic garbage collector runs ``__del__`` methods and weakref callbacks
  when allocation counts say so, and those differ on replay.  Everything the collector runs,
  and every weakref callback (``weakref.ref(obj, callback)``, ``weakref.finalize``), runs
  *outside* the sandbox: its crossings call the real functions and are not recorded, in both
  modes, so it can never shift the recorded sequence.
"""

from __future__ import annotations

import _weakref
import atexit
import contextlib
import gc
import os
import signal
import sys
from collections.abc import Callable

from retracesoftware.utils import GateState

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from retracesoftware.proxy import System

    from .patching import Installation

__all__ = ["install_atexit", "install_finalizers", "install_signals", "run_exit_handlers"]

_INSIDE = int(GateState.INSIDE)
_OUTSIDE = int(GateState.OUTSIDE)
_DISABLED = int(GateState.DISABLED)
_RECORD = 1
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_real_signal = signal.signal
_real_getsignal = signal.getsignal
_real_register = atexit.register
_real_unregister = atexit.unregister
_real_ref = _weakref.ref
_MISSING = object()


def _sandboxed(system: System) -> bool:
    return system.boundary.mode != 0 and system.gate.get() == _INSIDE


def _program_frame() -> Any:
    """The innermost frame of the program (not of Retrace)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    return frame


# --------------------------------------------------------------------------- signals


class _Signals:
    """Program signal handlers, delivered at crossings."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.handlers: dict[int, Any] = {}  # signum -> the program's handler
        self.pending: set[int] = set()  # deferred, not delivered yet
        self.deliver = system.callback(self._dispatch)

    def _dispatch(self, signum: int) -> None:
        """Run the program's handler (a recorded / replayed callback, in the sandbox)."""
        handler = self.handlers.get(signum)
        if callable(handler):
            handler(signum, _program_frame())

    def _deliver_pending(self, signum: int) -> None:
        self.pending.discard(signum)
        self.deliver(signum)

    def _catch(self, signum: int, frame: Any) -> None:
        """The real handler: decide where the program's handler runs."""
        system = self.system
        mode = system.boundary.mode
        if mode == _RECORD:
            state = system.gate.get()
            if state == _OUTSIDE:  # inside a crossing: a callback of that crossing
                self.deliver(signum)
                return
            if state in (_INSIDE, _DISABLED):  # program code: at the next crossing
                if (
                    state == _INSIDE
                    and signum in self.pending
                    and self.handlers.get(signum) is signal.default_int_handler
                ):
                    # A second Ctrl-C while the first waits for a crossing: the program
                    # computes without crossings; interrupt it here (not replayable).
                    signal.default_int_handler(signum, frame)
                self.pending.add(signum)
                system.defer(lambda: self._deliver_pending(signum))
                return
        elif mode != 0 and self.handlers.get(signum) is not signal.default_int_handler:
            # Replay runs handlers from the recording; a real signal reaching a replay is
            # ignored, except an interrupt (Ctrl-C), which stops it.
            return
        handler = self.handlers.get(signum)
        if callable(handler):
            handler(signum, frame)

    def signal(self, signum: Any, handler: Any) -> Any:
        """``signal.signal``: the program's handler is delivered through :meth:`_catch`."""
        if not _sandboxed(self.system):
            return _real_signal(signum, handler)
        if callable(handler):
            old = _real_signal(signum, self._catch)
        else:
            old = _real_signal(signum, handler)
        previous = self.handlers.pop(int(signum), _MISSING)
        if callable(handler):
            self.handlers[int(signum)] = handler
        return old if previous is _MISSING else previous

    def getsignal(self, signum: Any) -> Any:
        handler = self.handlers.get(int(signum), _MISSING) if isinstance(signum, int) else _MISSING
        return _real_getsignal(signum) if handler is _MISSING else handler

    def uninstall(self) -> None:
        for signum, handler in list(self.handlers.items()):
            if _real_getsignal(signum) == self._catch:
                with contextlib.suppress(ValueError, OSError):  # not the main thread
                    _real_signal(signum, handler)
        self.handlers.clear()


def install_signals(install: Installation) -> None:
    """The ``signals`` adapter (see the module docstring)."""
    signals = _Signals(install.system)

    def signal_(signalnum: Any, handler: Any) -> Any:
        return signals.signal(signalnum, handler)

    def getsignal(signalnum: Any) -> Any:
        return signals.getsignal(signalnum)

    signal_.__doc__ = _real_signal.__doc__
    getsignal.__doc__ = _real_getsignal.__doc__
    install._set_module(signal, "signal", signal_)
    install._set_module(signal, "getsignal", getsignal)
    if _real_getsignal(signal.SIGINT) is signal.default_int_handler:
        try:
            _real_signal(signal.SIGINT, signals._catch)
            signals.handlers[int(signal.SIGINT)] = signal.default_int_handler
        except ValueError:  # not the main thread: interrupts stay as they are
            pass
    install._finalizers.append(signals.uninstall)


# ---------------------------------------------------------------------------- atexit


class _Atexit:
    """atexit handlers registered by the sandboxed program."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.handlers: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []

    def register(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if not _sandboxed(self.system) or _is_finalize_exit(func):
            return _real_register(func, *args, **kwargs)
        if not callable(func):
            raise TypeError("the first argument must be callable")
        self.handlers.append((func, args, kwargs))
        return func

    def unregister(self, func: Callable[..., Any], /) -> None:
        self.handlers = [h for h in self.handlers if h[0] != func]
        _real_unregister(func)

    def run(self, outcome: Any) -> None:
        """Run the handlers, newest first, as the interpreter would at exit."""
        from retracesoftware.proxy import ReplayDivergence

        if not self.handlers:
            return
        if outcome is not None and hasattr(outcome, "report"):
            # Python prints an uncaught exception's traceback before running atexit handlers.
            with self.system.gate.scope(_DISABLED):
                outcome.report()
            outcome.reported = True
        while self.handlers:
            func, args, kwargs = self.handlers.pop()
            try:
                func(*args, **kwargs)
            except ReplayDivergence:
                raise
            except BaseException as exc:
                with self.system.gate.scope(_DISABLED):
                    _print_ignored(func, exc)


def _is_finalize_exit(func: Any) -> bool:
    """``weakref.finalize``'s own exit hook runs at the real exit, outside the sandbox: which
    finalizers are still pending then depends on the garbage collector."""
    import weakref

    return getattr(func, "__func__", None) is getattr(
        weakref.finalize._exitfunc, "__func__", _MISSING
    )


def _print_ignored(func: Any, exc: BaseException) -> None:
    import traceback  # only when a handler fails (slow to import)

    sys.stdout.flush()
    print(f"Exception ignored in atexit callback: {func!r}", file=sys.stderr)
    shown = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    shown.stack = traceback.StackSummary.from_list(
        [f for f in shown.stack if not f.filename.startswith(_PACKAGE_DIR)]
    )
    print("".join(shown.format()), end="", file=sys.stderr)
    sys.stderr.flush()


_atexit: _Atexit | None = None


def run_exit_handlers(outcome: Any = None) -> None:
    """Run the atexit handlers the program registered (called at the end of the program, in
    the sandbox, by the session).  *outcome* is printed first if there are any."""
    if _atexit is not None:
        _atexit.run(outcome)


def install_atexit(install: Installation) -> None:
    """The ``atexit`` adapter (see the module docstring)."""
    global _atexit
    state = _Atexit(install.system)
    _atexit = state

    def register(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return state.register(func, *args, **kwargs)

    def unregister(func: Callable[..., Any], /) -> None:
        state.unregister(func)

    register.__doc__ = _real_register.__doc__
    unregister.__doc__ = _real_unregister.__doc__
    install._set_module(atexit, "register", register)
    install._set_module(atexit, "unregister", unregister)

    def forget() -> None:
        global _atexit
        if _atexit is state:
            _atexit = None

    install._finalizers.append(forget)


# ------------------------------------------------------------------------ finalizers


def install_finalizers(install: Installation) -> None:
    """The ``finalizers`` adapter: the garbage collector's work and weakref callbacks run
    outside the sandbox."""
    import _thread
    import weakref

    system = install.system
    gate = system.gate
    saved: dict[int, int] = {}
    get_ident = _thread.get_ident

    def collecting(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            if system.boundary.mode != 0:
                saved[get_ident()] = gate.set(_DISABLED)
        else:
            previous = saved.pop(get_ident(), None)
            if previous is not None:
                gate.set(previous)

    def outside(callback: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def run(reference: Any) -> Any:
            if system.boundary.mode == 0:
                return callback(reference)
            previous = gate.set(_DISABLED)
            try:
                return callback(reference)
            finally:
                gate.set(previous)

        return run

    class _RefType(type):
        def __instancecheck__(cls, obj: Any) -> bool:
            return isinstance(obj, _real_ref)

        def __subclasscheck__(cls, sub: Any) -> bool:
            return issubclass(sub, _real_ref)

    class ref(_real_ref, metaclass=_RefType):  # replaces weakref.ref
        __slots__ = ()

        def __new__(cls, ob: Any, callback: Any = None, /, *args: Any, **kwargs: Any) -> Any:
            if callback is not None:
                callback = outside(callback)
            if cls is ref:
                return _real_ref(ob) if callback is None else _real_ref(ob, callback)
            return _real_ref.__new__(cls, ob, callback)

    ref.__doc__ = _real_ref.__doc__
    ref.__module__ = "weakref"
    gc.callbacks.append(collecting)
    install._set_module(weakref, "ref", ref)

    def remove() -> None:
        if collecting in gc.callbacks:
            gc.callbacks.remove(collecting)

    install._finalizers.append(remove)
