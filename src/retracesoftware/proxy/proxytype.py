"""Proxies and stand-ins for external objects.

An external object that is neither plain data nor an instance of a patched type is handed to
the program wrapped in a proxy: every operation on the proxy (attribute access, call,
iteration, comparison, ...) is itself a boundary crossing, so on replay the proxy needs no real
object behind it.  :func:`proxytype` builds the proxy class of a System; :class:`StubFactory`
makes the inert stand-ins that replay uses wherever the recording introduces an external object.
"""

from __future__ import annotations

import operator
import types
from collections.abc import Callable

from retracesoftware.utils import Crossing, GateState

from .errors import EngineError

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from .system import System

__all__ = ["ExternalProxy", "ProxyMethod", "StubFactory", "proxytype", "unwrap"]


#: ``Crossing.info`` of the operations of proxy types.
PROXY_OPERATION = "proxy-operation"


class ExternalProxy:
    """Base class of every proxy type; ``_retrace_target`` is the real object (``None`` in a
    replay stand-in) and ``_retrace_type`` the name of the real object's type."""

    __slots__ = ("__weakref__", "_retrace_target", "_retrace_type")


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
        if args and not _PLAIN_TYPES.issuperset(map(type, args)):  # (at C speed)
            return self.op(target, *[unwrap(a) for a in args], **kwargs)
        return self.op(target, *args, **kwargs)


_PLAIN_TYPES = frozenset((type(None), bool, int, float, str, bytes, type))


def _call(target: Any, *args: Any, **kwargs: Any) -> Any:
    return target(*args, **kwargs)


def _enter(target: Any) -> Any:
    return _same_or_boxed(target, target.__enter__())


def _iter(target: Any) -> Any:
    return _same_or_boxed(target, iter(target))


def _same_or_boxed(target: Any, result: Any) -> Any:
    """``1`` when an operation returned its own object (files' ``__enter__`` and ``__iter__``
    do), else the result in a one-item list: plain data either way for the common case, so
    the crossing takes the native fast path instead of binding a result."""
    return _SAME if result is target else [result]


_SAME = 1


def _exit(target: Any, *args: Any) -> Any:
    return target.__exit__(*args)


_OPERATIONS: dict[str, Callable[..., Any]] = {
    "__getattr__": getattr,
    "__setattr__": setattr,
    "__call__": _call,
    "__len__": len,
    "__iter__": _iter,
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


def _is_method(target: Any, name: str) -> bool:
    """Record: is ``target.name`` a method of its type, not shadowed by the instance?"""
    namespace = getattr(target, "__dict__", None)
    if type(namespace) is dict and name in namespace:
        return False
    for klass in type(target).__mro__:
        attr = klass.__dict__.get(name, _NOTHING)
        if attr is not _NOTHING:
            return type(attr) in _METHOD_TYPES
    return False


def _call_method(target: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    return getattr(target, name)(*args, **kwargs)


_NOTHING = object()
_METHOD_TYPES = (
    types.FunctionType,
    types.MethodDescriptorType,  # read, write, ... of C types
    types.WrapperDescriptorType,
)
_INSIDE = int(GateState.INSIDE)


class ProxyMethod:
    """``proxy.name`` where *name* is a method of the external object's type: calling it is
    one crossing (``proxy.__callmethod__``); getting it is none, once the first lookup of that
    name on that type (a ``proxy.__ismethod__`` crossing) said it is a method."""

    __slots__ = ("__name__", "__self__", "_call")

    def __init__(self, proxy: ExternalProxy, name: str, call: Any) -> None:
        self.__self__ = proxy
        self.__name__ = name
        self._call = call

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(self.__self__, self.__name__, *args, **kwargs)

    def __eq__(self, other: object) -> bool:
        # As bound methods: the same method of the same object (no crossing).
        if type(other) is not ProxyMethod:
            return NotImplemented
        return self.__self__ is other.__self__ and self.__name__ == other.__name__

    def __hash__(self) -> int:
        return hash((id(self.__self__), self.__name__))

    def __repr__(self) -> str:
        kind = object.__getattribute__(self.__self__, "_retrace_type")
        return f"<method {self.__name__} of external {kind}>"


def proxytype(system: System, name: str = "ExternalProxy") -> type[ExternalProxy]:
    """Build a proxy class whose operations are crossings of *system*'s boundary.

    Getting a method (``file.read``) returns a :class:`ProxyMethod` without crossing once the
    calling thread has learnt, through one ``proxy.__ismethod__`` crossing, that the name is a
    method of that type of object; its call is then a single crossing.  The learning is per
    thread and per run, so a replay crosses exactly where the recording did.
    """
    namespace: dict[str, Any] = {"__slots__": (), "__module__": __name__}
    for op_name, op in _OPERATIONS.items():
        namespace[op_name] = Crossing(
            _Forward(op_name, op), f"proxy.{op_name}", system.boundary, info=PROXY_OPERATION
        )
    get_attribute = namespace["__getattr__"]
    is_method = Crossing(
        _Forward("__ismethod__", _is_method),
        "proxy.__ismethod__",
        system.boundary,
        info=PROXY_OPERATION,
    )
    call_method = Crossing(
        _Forward("__callmethod__", _call_method),
        "proxy.__callmethod__",
        system.boundary,
        info=PROXY_OPERATION,
    )
    boundary = system.boundary
    gate = system.gate
    type_of = ExternalProxy._retrace_type.__get__  # type: ignore[attr-defined]

    def __getattr__(self: ExternalProxy, attr: str) -> Any:
        if boundary.mode == 0 or gate.get() != _INSIDE or attr[:2] == "__":
            return get_attribute(self, attr)
        learnt = system._method_kinds.get(gate.tag)
        if learnt is None:
            learnt = system._method_kinds[gate.tag] = {}
        key = (type_of(self), attr)
        method = learnt.get(key)
        if method is None:
            method = learnt[key] = is_method(self, attr) is True
        if method:
            return ProxyMethod(self, attr, call_method)
        return get_attribute(self, attr)

    namespace["__getattr__"] = __getattr__
    for op_name in ("__enter__", "__iter__"):
        namespace[op_name] = _unboxing(namespace[op_name], op_name)
    return type(name, (ExternalProxy,), namespace)


def _unboxing(crossing: Crossing, name: str) -> Callable[[ExternalProxy], Any]:
    """The proxy method around a crossing whose target returns ``_same_or_boxed(...)``."""

    def operation(self: ExternalProxy) -> Any:
        result = crossing(self)
        return self if type(result) is int else result[0]

    operation.__name__ = operation.__qualname__ = name
    return operation


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
