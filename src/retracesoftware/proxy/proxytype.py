"""Proxies and stand-ins for external objects.

An external object that is neither plain data nor an instance of a patched type is handed to
the program wrapped in a proxy: every operation on the proxy (attribute access, call,
iteration, comparison, ...) is itself a boundary crossing, so on replay the proxy needs no real
object behind it.  :func:`proxytype` builds the proxy class of a System; :class:`StubFactory`
makes the inert stand-ins that replay uses wherever the recording introduces an external object.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from retracesoftware.utils import Crossing, GateState

from .errors import EngineError

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from .system import System

__all__ = ["ExternalProxy", "StubFactory", "proxytype", "unwrap"]


#: ``Crossing.info`` of the operations of proxy types.
PROXY_OPERATION = "proxy-operation"


class ExternalProxy:
    """Base class of every proxy type; ``_retrace_target`` is the real object (``None`` in a
    replay stand-in) and ``_retrace_type`` the name of the real object's type."""

    __slots__ = ("_retrace_target", "_retrace_type")


def unwrap(obj: Any) -> Any:
    """The real object behind a proxy made on record (``obj`` itself if it is no proxy)."""
    if isinstance(obj, ExternalProxy):
        target = _target_of(obj)
        if target is not None:
            return target
    return obj


_target_of = ExternalProxy._retrace_target.__get__  # type: ignore[attr-defined]


class _Forward:
    """Target of a proxy crossing: apply ``op`` to the real object."""

    __slots__ = ("name", "op")

    def __init__(self, name: str, op: Callable[..., Any]) -> None:
        self.name = name
        self.op = op

    def __call__(self, proxy: ExternalProxy, *args: Any, **kwargs: Any) -> Any:
        target = _target_of(proxy)
        if target is None:
            if self.name in ("__repr__", "__str__"):
                return f"<replayed {object.__getattribute__(proxy, '_retrace_type')}>"
            raise EngineError(
                f"{self.name} of a replayed external object was called outside the sandbox; "
                "it has no real object behind it"
            )
        if args:
            return self.op(target, *[unwrap(a) for a in args], **kwargs)
        return self.op(target, **kwargs)


def _call(target: Any, *args: Any, **kwargs: Any) -> Any:
    return target(*args, **kwargs)


def _enter(target: Any) -> Any:
    return target.__enter__()


def _exit(target: Any, *args: Any) -> Any:
    return target.__exit__(*args)


_OPERATIONS: dict[str, Callable[..., Any]] = {
    "__getattr__": getattr,
    "__setattr__": setattr,
    "__call__": _call,
    "__len__": len,
    "__iter__": iter,
    "__next__": next,
    "__getitem__": operator.getitem,
    "__setitem__": operator.setitem,
    "__contains__": operator.contains,
    "__enter__": _enter,
    "__exit__": _exit,
    "__repr__": repr,
    "__str__": str,
    "__bool__": bool,
    "__eq__": operator.eq,
    "__ne__": operator.ne,
    "__hash__": hash,
    "__int__": int,
    "__float__": float,
    "__index__": operator.index,
}


def proxytype(system: System, name: str = "ExternalProxy") -> type[ExternalProxy]:
    """Build a proxy class whose operations are crossings of *system*'s boundary."""
    namespace: dict[str, Any] = {"__slots__": (), "__module__": __name__}
    for op_name, op in _OPERATIONS.items():
        namespace[op_name] = Crossing(
            _Forward(op_name, op), f"proxy.{op_name}", system.boundary, info=PROXY_OPERATION
        )
    return type(name, (ExternalProxy,), namespace)


def make_proxy(cls: type[ExternalProxy], target: Any, type_name: str) -> ExternalProxy:
    """An instance of proxy class *cls* around *target* (``None`` for a stand-in)."""
    proxy = object.__new__(cls)
    object.__setattr__(proxy, "_retrace_target", target)
    object.__setattr__(proxy, "_retrace_type", type_name)
    return proxy


class StubFactory:
    """Makes inert stand-ins for the external objects a recording introduces.

    ``kind`` is ``"type:<module>.<qualname>"`` (an instance of a patched type, or of a
    subclass of one) or ``"proxy:<module>.<qualname>"`` (any other external object).  Instances
    of patched types are allocated with the type's ``__new__`` and never initialised; a per-type
    factory can be registered for types whose ``__new__`` is not inert.
    """

    def __init__(self, system: System) -> None:
        self._system = system
        self._factories: dict[type, Callable[[type], Any]] = {}

    def register(self, cls: type, factory: Callable[[type], Any]) -> None:
        """Use ``factory(cls)`` to make stand-ins for *cls* (and subclasses without their own)."""
        self._factories[cls] = factory

    def __call__(self, kind: str) -> Any:
        system = self._system
        prefix, _, type_name = kind.partition(":")
        if prefix == "proxy":
            return make_proxy(system.proxy_type, None, type_name)
        if prefix != "type":
            raise EngineError(f"the recording names an unknown kind of object {kind!r}")
        cls = system.resolve_bound_type(type_name)
        factory = next((self._factories[c] for c in cls.__mro__ if c in self._factories), None)
        with system.gate.scope(GateState.DISABLED):
            return factory(cls) if factory is not None else cls.__new__(cls)
