"""Apply a :class:`~retracesoftware.install.config.Config` to a live interpreter.

:func:`install` patches the functions and types of every configured module that is already
loaded through a :class:`retracesoftware.proxy.System`, finds the *aliases* other loaded modules
made of the patched functions before Retrace started (``from time import time``) and patches
them too, and applies the built-in adapters.  Configured modules that are not loaded yet are not
imported (importing ``ssl`` or ``sqlite3`` for a program that never uses them would cost most of
Retrace's start-up): an import hook patches each one when it is first imported, also while the
program runs.  Its module body then runs outside the sandbox, exactly as if it had been imported
before the program started, so a recording does not depend on when (or whether) a configured
module was imported before the program.  Modules listed in ``skip_aliases_in`` that are imported
after the patching get the original functions back in their aliases, as if they had been loaded
first.  :meth:`Installation.uninstall` undoes everything.
"""

from __future__ import annotations

import datetime as _datetime
import fnmatch
import os
import sys
import time as _time
import types
from collections.abc import Callable, Sequence

from retracesoftware.proxy import System
from retracesoftware.utils import GateState, set_type_attribute

from . import eventloop, network, osfiles, processes, stdio
from .config import Config, ConfigError, ModuleConfig
from .lifecycle import install_atexit, install_finalizers, install_signals
from .sync import install_futures_order, install_sync

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Installation", "install"]

#: Modules whose private aliases of patched functions are never patched: the import system,
#: the os implementation modules and Retrace itself.
ALWAYS_SKIP_ALIASES = (
    "posix",
    "nt",
    "os",
    "_io",  # io.open_code() calls _io.open: the interpreter reading source and bytecode
    "builtins",
    "importlib",
    "importlib.*",
    "_frozen_importlib",
    "_frozen_importlib_external",
    "zipimport",
    "retracesoftware",
    "retracesoftware.*",
    "pytest",
    "_pytest",
    "_pytest.*",
)


_MISSING = object()


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


_INSIDE = int(GateState.INSIDE)
_DISABLED = int(GateState.DISABLED)
_STDLIB = frozenset(sys.stdlib_module_names) - {"__main__"}


def _function_ids(module: types.ModuleType, mod: ModuleConfig) -> set[int]:
    """The ids of the configured functions *module* has (what the alias index looks for)."""
    ids = set()
    for fn_name in (*mod.functions, *mod.optional):
        value = getattr(module, fn_name, None)
        if value is not None:
            ids.add(id(value))
    return ids


def _initialised(name: str, just_loaded: str) -> bool:
    """True if module *name* is loaded and not still running its body (*just_loaded* has
    finished its body: the import system clears its ``_initializing`` flag a moment later)."""
    module = sys.modules.get(name)
    if module is None:
        return False
    if name == just_loaded:
        return True
    return not getattr(getattr(module, "__spec__", None), "_initializing", False)


# --------------------------------------------------------------------------- adapters


def _datetime_now(install: Installation) -> None:
    """Route ``datetime.now/utcnow/today`` and ``date.today`` through ``time.time()``."""
    clock = _time  # looked up at call time: the patched time.time is used

    def now(cls: Any, tz: Any = None) -> Any:
        return cls.fromtimestamp(clock.time(), tz)

    def utcnow(cls: Any) -> Any:
        return cls.fromtimestamp(clock.time(), _datetime.UTC).replace(tzinfo=None)

    def today(cls: Any) -> Any:
        return cls.fromtimestamp(clock.time())

    install._set_type(_datetime.datetime, "now", classmethod(now))
    install._set_type(_datetime.datetime, "utcnow", classmethod(utcnow))
    install._set_type(_datetime.datetime, "today", classmethod(today))
    install._set_type(_datetime.date, "today", classmethod(today))


def _thread_start(install: Installation) -> None:
    """Make every thread the sandboxed program starts part of the recording.

    ``_thread.start_new_thread`` (and ``start_joinable_thread`` on 3.13+) are wrapped, in
    ``_thread`` and in ``threading``'s private aliases: a thread started from sandboxed code
    runs its function through :meth:`System.thread` (recorded thread tag, ``END`` event);
    threads started elsewhere are untouched.
    """
    import _thread
    import threading

    system = install.system
    inside = int(GateState.INSIDE)

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def start(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            if system.mode and system.gate.get() == inside:
                function = system.thread(function)
            return original(function, *args, **kwargs)

        start.__name__ = getattr(original, "__name__", "start")
        start.__doc__ = getattr(original, "__doc__", None)
        return start

    for name, alias in (
        ("start_new_thread", "_start_new_thread"),
        ("start_joinable_thread", "_start_joinable_thread"),
    ):
        original = getattr(_thread, name, None)
        if original is None:
            continue
        wrapped = wrap(original)
        install._set_module(_thread, name, wrapped)
        if getattr(threading, alias, None) is original:
            install._set_module(threading, alias, wrapped)


def _stdin(install: Installation) -> None:
    """Replace ``sys.stdin`` by a stream whose reads are crossings (see :mod:`.stdio`)."""
    if sys.stdin is None:
        return
    for name in ("read", "readline", "isatty"):
        install.system.patch_function(stdio.calls, name, key=f"sys.stdin.{name}")
        install.patched.append(f"sys.stdin.{name}")
    for name in ("read", "read1", "readline"):
        install.system.patch_function(stdio.buffer_calls, name, key=f"sys.stdin.buffer.{name}")
        install.patched.append(f"sys.stdin.buffer.{name}")
    previous, _ = stdio.install_stdin()
    install._finalizers.append(lambda: stdio.uninstall_stdin(previous))


_ADAPTERS: dict[str, Callable[[Installation], None]] = {
    "stdin": _stdin,
    "datetime-now": _datetime_now,
    "thread-start": _thread_start,
    "socket": network.socket_adapter,
    "ssl": network.ssl_adapter,
    "selectors": network.selectors_adapter,
    "socketserver": network.socketserver_adapter,
    "asyncio": eventloop.asyncio_adapter,
    "subprocess": processes.install,
    "os-write": osfiles.install,
    "thread-sync": install_sync,
    "futures-lock-order": install_futures_order,
    "signals": install_signals,
    "atexit": install_atexit,
    "finalizers": install_finalizers,
}

#: The modules an adapter works on: it runs once all of them are loaded (right after the last
#: one has finished executing when the program imports them), never importing one itself.
_ADAPTER_NEEDS: dict[str, tuple[str, ...]] = {
    "datetime-now": ("datetime",),
    "thread-start": ("_thread", "threading"),
    "socket": ("_socket", "socket"),
    "ssl": ("_ssl", "ssl"),
    "selectors": ("select", "selectors"),
    "socketserver": ("socketserver",),
    "subprocess": ("subprocess",),
    "thread-sync": ("_thread", "threading", "queue"),
    "futures-lock-order": ("concurrent.futures._base",),
    "signals": ("signal",),
    "finalizers": ("weakref",),
}


# ------------------------------------------------------------------------ import hook


class _PatchOnImport:
    """A meta path finder that patches configured modules when they are first imported (no
    ``importlib.abc`` base: importing that module costs more than the rest of start-up).

    It also sees the first import of a module named by a ``skip_aliases_in`` pattern, to give
    that module's aliases the original functions back.  The loader it returns delegates to the
    real one, which the module keeps as ``__loader__`` once loaded.
    """

    def __init__(self, install: Installation) -> None:
        self.install = install
        self._finding: set[str] = set()  # names being looked up (finders that ask each other)

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        install = self.install
        configured = fullname in install.pending
        outside = configured or fullname.partition(".")[0] in _STDLIB
        if fullname in self._finding or not (
            outside or fullname in install.awaited or install.unaliases(fullname)
        ):
            return None
        spec = None
        self._finding.add(fullname)
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._finding.discard(fullname)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        if getattr(loader, "exec_module", None) is None:  # a legacy loader: left alone
            return None
        spec.loader = _AfterExec(loader, fullname, install, configured, outside)
        return spec


class _AfterExec:
    """Loader wrapper of :class:`_PatchOnImport`: runs the module (outside the sandbox for a
    configured or standard-library module), then patches it."""

    def __init__(
        self, loader: Any, name: str, install: Installation, configured: bool, outside: bool
    ) -> None:
        self._loader = loader
        self._name = name
        self._install = install
        self._configured = configured
        self._outside = outside

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._loader, attr)

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        loader = self._loader
        install = self._install
        module.__loader__ = loader
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = loader
        # The body of a configured or standard-library module (and what it imports) runs
        # outside the sandbox, as it would have before the program started: nothing it does
        # is recorded or replayed, so it does not matter whether Retrace, a sitecustomize or
        # the program imported it first, in either run.
        gate = install.system.gate
        previous = gate.get() if self._outside else None
        if previous == _INSIDE:
            gate.set(_DISABLED)
        try:
            loader.exec_module(module)
        finally:
            if previous == _INSIDE:
                gate.set(previous)
        if self._configured:
            install._loaded(self._name, module)
        else:
            install._unalias(self._name, module)
        install._run_adapters(self._name)


# ----------------------------------------------------------------------- installation


class Installation:
    """The patches of one configuration on one :class:`System`."""

    def __init__(self, system: System, config: Config) -> None:
        self.system = system
        self.config = config
        self.pending: dict[str, ModuleConfig] = {}
        self.patched: list[str] = []  # keys of every crossing installed
        # id(crossing) -> (crossing, original, skip_aliases_in patterns), for aliases made by
        # modules imported after the patching (see _unalias)
        self._skips: dict[int, tuple[Any, Any, tuple[str, ...]]] = {}
        self._skip_patterns: tuple[str, ...] = ()
        self._waiting: list[tuple[str, tuple[str, ...]]] = []  # adapters waiting for modules
        self.awaited: set[str] = set()  # the modules they wait for
        self.unavailable: list[str] = []  # adapter patches this interpreter does not allow
        self._undo: list[tuple[type, str, Any]] = []
        self._module_undo: list[tuple[types.ModuleType, str, Any]] = []
        self._finalizers: list[Callable[[], None]] = []
        self._index: dict[int, list[tuple[str, types.ModuleType, str]]] | None = None
        self._wanted: set[int] | None = None  # ids of the functions apply() patches
        self._hook: _PatchOnImport | None = None

    def _set_module(self, module: types.ModuleType, name: str, value: Any) -> None:
        self._module_undo.append((module, name, getattr(module, name)))
        setattr(module, name, value)

    def _set_type(self, cls: type, name: str, value: Any) -> bool:
        """Set ``cls.name``; False (and nothing changed) if this interpreter ignores it."""
        original = cls.__dict__.get(name, _MISSING)
        set_type_attribute(cls, name, value)
        if cls.__dict__.get(name) is not value:
            # An interpreter that ignores the assignment: reported, never silently lost.
            self.unavailable.append(f"{cls.__module__}.{cls.__qualname__}.{name}")
            return False
        self._undo.append((cls, name, original))
        return True

    def _patch_module(self, name: str, module: types.ModuleType, mod: ModuleConfig) -> None:
        system = self.system
        for type_name in mod.types:
            cls = getattr(module, type_name, None)
            if not isinstance(cls, type):
                raise AttributeError(f"{name}.{type_name} is not a class")
            system.patch_type(cls)
            self.patched.append(f"{name}.{type_name}")
        originals: list[tuple[Any, str]] = []
        for fn_name in [*mod.functions, *mod.optional]:
            if not hasattr(module, fn_name):
                if fn_name in mod.optional:
                    continue
                raise AttributeError(f"module {name!r} has no attribute {fn_name!r}")
            original = getattr(module, fn_name)
            crossing = system.patch_function(module, fn_name, key=f"{name}.{fn_name}")
            self.patched.append(f"{name}.{fn_name}")
            originals.append((original, f"{name}.{fn_name}"))
            if mod.skip_aliases_in and crossing is not original:
                self._skips[id(crossing)] = (crossing, original, tuple(mod.skip_aliases_in))
        if mod.skip_aliases_in:
            self._skip_patterns = tuple({*self._skip_patterns, *mod.skip_aliases_in})
        self._patch_aliases(originals, [*ALWAYS_SKIP_ALIASES, *mod.skip_aliases_in], module)
        for adapter in mod.adapters:
            needs = _ADAPTER_NEEDS.get(adapter, ())
            missing = tuple(n for n in needs if not _initialised(n, name))
            if missing:
                self._waiting.append((adapter, needs))
                self._await()
            else:
                _ADAPTERS[adapter](self)

    def _await(self) -> None:
        """Watch the imports of every module a waiting adapter, or an adapter of a module
        still to be imported, needs: the importer of ``_socket`` is ``socket``, whose import
        starts first."""
        awaited = {n for _, needs in self._waiting for n in needs}
        for mod in self.pending.values():
            for adapter in mod.adapters:
                awaited.update(_ADAPTER_NEEDS.get(adapter, ()))
        self.awaited = awaited

    def _run_adapters(self, just_loaded: str) -> None:
        """Run the adapters whose modules are all loaded now that *just_loaded* is."""
        if not self._waiting or just_loaded not in self.awaited:
            return
        ready = [
            (adapter, needs)
            for adapter, needs in self._waiting
            if all(_initialised(n, just_loaded) for n in needs)
        ]
        if not ready:
            return
        self._waiting = [entry for entry in self._waiting if entry not in ready]
        self._await()
        for adapter, _ in ready:
            _ADAPTERS[adapter](self)

    def _alias_index(self) -> dict[int, list[tuple[str, types.ModuleType, str]]]:
        """id(value) -> (module name, module, attribute) for every loaded module's callables."""
        if self._index is None:
            index: dict[int, list[tuple[str, types.ModuleType, str]]] = {}
            wanted = self._wanted
            for mod_name, module in list(sys.modules.items()):
                namespace = getattr(module, "__dict__", None)
                if not isinstance(module, types.ModuleType) or not namespace:
                    continue
                if wanted is not None and wanted.isdisjoint(map(id, list(namespace.values()))):
                    continue  # (at C speed) none of the functions being patched is here
                for attr, value in list(namespace.items()):
                    if callable(value) and not isinstance(value, type):
                        index.setdefault(id(value), []).append((mod_name, module, attr))
            self._index = index
        return self._index

    def _patch_aliases(
        self, originals: list[tuple[Any, str]], skip: list[str], owner: types.ModuleType
    ) -> None:
        if not originals:
            return
        index = self._alias_index()
        for original, key in originals:
            for mod_name, module, attr in index.get(id(original), ()):
                if module is owner or _matches(mod_name, skip):
                    continue
                if module.__dict__.get(attr) is not original:
                    continue
                # The alias crosses under the function's own name: a module imported after
                # the patching gets the patched function itself, so the recording is the same
                # whether the aliasing module was loaded before or after.
                self.system.patch_function(module, attr, key=key)
                self.patched.append(f"{mod_name}.{attr}")

    def unaliases(self, name: str) -> bool:
        """True if a module called *name* must keep original functions in its aliases."""
        return bool(self._skip_patterns) and _matches(name, self._skip_patterns)

    def _unalias(self, name: str, module: types.ModuleType) -> None:
        """Give a module first imported after the patching, and named by a
        ``skip_aliases_in`` pattern, the original functions in its aliases."""
        skips = self._skips
        for attr, value in list(module.__dict__.items()):
            entry = skips.get(id(value))
            if entry is not None and entry[0] is value and _matches(name, entry[2]):
                setattr(module, attr, entry[1])

    def _loaded(self, name: str, module: types.ModuleType) -> None:
        """Patch configured module *name*, just imported (the engine may be running)."""
        mod = self.pending.pop(name, None)
        if mod is None:
            return
        self._wanted = _function_ids(module, mod)
        try:
            self._patch_configured(name, module, mod)
        finally:
            self._index = None
            self._wanted = None
        if self.unaliases(name):
            self._unalias(name, module)

    def _patch_configured(self, name: str, module: types.ModuleType, mod: ModuleConfig) -> None:
        """:meth:`_patch_module`, a missing attribute reported against the config file."""
        try:
            self._patch_module(name, module, mod)
        except AttributeError as exc:
            where = " or ".join(self.config.sources.get(name, ["<config>"]))
            raise ConfigError(f"{where}: [modules.{name}]: {exc}") from None

    def apply(self) -> None:
        """Patch every configured module already loaded; hook the others (see the module
        docstring: nothing is imported here)."""
        # Index only the aliases of the functions about to be patched (ids taken before any
        # patching), not every callable of every loaded module.
        wanted: set[int] = set()
        for name, mod in self.config.modules.items():
            module = sys.modules.get(name)
            if module is not None:
                wanted |= _function_ids(module, mod)
        self._wanted = wanted
        try:
            self._apply()
        finally:
            self._index = None
            self._wanted = None

    def _apply(self) -> None:
        for name, mod in self.config.modules.items():
            module = sys.modules.get(name)
            if module is None:
                self.pending[name] = mod
                continue
            self._patch_configured(name, module, mod)
        self._await()
        # Always: standard-library modules imported later run their bodies outside the sandbox.
        self._hook = _PatchOnImport(self)
        sys.meta_path.insert(0, self._hook)

    def uninstall(self) -> None:
        """Undo every patch and adapter and remove the import hook."""
        if self._hook is not None and self._hook in sys.meta_path:
            sys.meta_path.remove(self._hook)
        self._hook = None
        while self._finalizers:
            self._finalizers.pop()()
        self.system.uninstall()
        while self._module_undo:
            module, name, original = self._module_undo.pop()
            setattr(module, name, original)
        while self._undo:
            cls, name, original = self._undo.pop()
            if original is _MISSING:
                set_type_attribute(cls, name)
            else:
                set_type_attribute(cls, name, original)
        self.patched.clear()

    def __enter__(self) -> Installation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.uninstall()


def install(config: Config, system: System | None = None) -> Installation:
    """Patch the interpreter according to *config*; returns the :class:`Installation`."""
    if system is None:
        # Divergences inside the install layer's adapters point at the program's call.
        system = System(adapter_dirs=(os.path.dirname(os.path.abspath(__file__)),))
    inst = Installation(system, config)
    try:
        inst.apply()
    except BaseException:
        inst.uninstall()
        raise
    return inst
