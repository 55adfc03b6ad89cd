"""The ``asyncio`` adapter: callbacks handed to an event loop by other threads.

An event loop's own scheduling replays from what is already recorded: ``loop.time()`` reads
the patched ``time.monotonic``, the selector's ``epoll`` object and the self-pipe are replayed.
What is not ordered by any recorded call is ``loop.call_soon_threadsafe`` from another thread
(a ``run_in_executor`` or ``to_thread`` job finishing, ``getaddrinfo`` by host name): the loop
may see the callback one iteration earlier or later than in the recorded run.

The adapter gives every loop an *inbox*: ``call_soon_threadsafe`` appends there, and each
iteration (``_run_once``) first moves a recorded number of callbacks from the inbox to the
ready queue, through the crossing ``asyncio.threadsafe_callbacks``.  On replay the loop waits
(up to the engine's ``timeout``) until the other threads have delivered that many.

``asyncio`` is not imported to install this: ``BaseEventLoop`` is patched when the program
first imports ``asyncio.base_events`` (at the same point of the program in both runs).
"""

from __future__ import annotations

import collections
import importlib.machinery
import sys
import time
import types

from retracesoftware.utils import GateState

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from .patching import Installation

__all__ = ["asyncio_adapter", "calls"]

_INBOX = "_retrace_inbox"
_MODULE = "asyncio.base_events"


def _threadsafe_callbacks(inbox: collections.deque[Any]) -> int:
    return len(inbox)


#: Owner of the ``asyncio.threadsafe_callbacks`` crossing.
calls = types.SimpleNamespace(threadsafe_callbacks=_threadsafe_callbacks)


def _inbox(loop: Any) -> collections.deque[Any]:
    inbox = loop.__dict__.get(_INBOX)
    if inbox is None:
        inbox = loop.__dict__.setdefault(_INBOX, collections.deque())
    return inbox


def _patch_loop(install: Installation, module: types.ModuleType) -> None:
    from asyncio import events

    system = install.system
    cls = module.BaseEventLoop
    original_threadsafe = cls.call_soon_threadsafe
    original_run_once = cls._run_once

    def call_soon_threadsafe(self: Any, callback: Any, *args: Any, context: Any = None) -> Any:
        if not system.mode:
            return original_threadsafe(self, callback, *args, context=context)
        self._check_closed()
        if self._debug:
            self._check_callback(callback, "call_soon_threadsafe")
        handle = events.Handle(callback, args, self, context)
        _inbox(self).append(handle)
        self._write_to_self()
        return handle

    def wait_for(inbox: collections.deque[Any], count: int) -> None:
        tag = system.gate.tag
        with system.gate.scope(GateState.DISABLED):
            deadline = time.monotonic() + system.timeout
            while len(inbox) < count:
                if system.divergence is not None:
                    raise system.divergence
                if time.monotonic() >= deadline:
                    system._diverge(
                        tag,
                        "thread",
                        f"{count} callbacks from other threads (call_soon_threadsafe)",
                        f"received {len(inbox)} in {system.timeout:g} s",
                    )
                time.sleep(0.0005)

    def _run_once(self: Any) -> Any:
        if system.mode:
            inbox = _inbox(self)
            count = calls.threadsafe_callbacks(inbox)
            if type(count) is not int or count < 0:
                system._diverge(
                    system.gate.tag,
                    "malformed",
                    "a count of callbacks",
                    f"got {type(count).__name__}",
                )
            if len(inbox) < count:
                wait_for(inbox, count)
            ready = self._ready
            for _ in range(count):
                ready.append(inbox.popleft())
        return original_run_once(self)

    call_soon_threadsafe.__doc__ = original_threadsafe.__doc__
    install._set_type(cls, "call_soon_threadsafe", call_soon_threadsafe)
    install._set_type(cls, "_run_once", _run_once)


class _AfterImport:
    """Run a callback right after one module has been executed by its normal loader (a meta
    path finder; no ``importlib.abc`` base: that module imports ``importlib.resources``,
    ``tempfile``, ``shutil``...)."""

    def __init__(self, name: str, callback: Any) -> None:
        self.name = name
        self.callback = callback

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        loader = spec.loader
        callback = self.callback

        class _Loader:
            def create_module(self, spec: Any) -> Any:
                return loader.create_module(spec)

            def exec_module(self, module: types.ModuleType) -> None:
                loader.exec_module(module)
                callback(module)

        spec.loader = _Loader()
        return spec


def asyncio_adapter(install: Installation) -> None:
    """Install the inbox (see the module docstring) now or when asyncio is imported."""
    install.system.patch_function(calls, "threadsafe_callbacks", key="asyncio.threadsafe_callbacks")
    install.patched.append("asyncio.threadsafe_callbacks")
    module = sys.modules.get(_MODULE)
    if module is not None:
        _patch_loop(install, module)
        return
    hook: _AfterImport

    def loaded(module: types.ModuleType) -> None:
        if hook in sys.meta_path:
            sys.meta_path.remove(hook)
        _patch_loop(install, module)

    hook = _AfterImport(_MODULE, loaded)
    sys.meta_path.insert(0, hook)

    def remove() -> None:
        if hook in sys.meta_path:
            sys.meta_path.remove(hook)

    install._finalizers.append(remove)
