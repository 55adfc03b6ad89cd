"""Pure-Python twin of the native functional combinators.

Every name here has the same behaviour as its C++ counterpart in
``_functional``: results, exceptions and their messages, ``repr`` and the
public attributes.  The shared test-suite runs against both.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable
from types import MethodType

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "and_",
    "arg",
    "compose",
    "constantly",
    "dispatch",
    "first_of",
    "identity",
    "if_then_else",
    "is_instance",
    "is_type",
    "juxt",
    "memoize",
    "not_",
    "or_",
    "partial",
    "sequence",
    "side_effect",
    "when",
]


def _check_callable(owner: str, position: int, value: object) -> None:
    if not callable(value):
        raise TypeError(
            f"{owner}() argument {position} must be callable, not {type(value).__name__}"
        )


def _check_functions(owner: str, functions: tuple[Any, ...], what: str = "function") -> None:
    if not functions:
        raise TypeError(f"{owner}() needs at least one {what}")
    for position, function in enumerate(functions, 1):
        _check_callable(owner, position, function)


def _check_arity(owner: str, args: tuple[Any, ...], kwargs: dict[str, Any], n: int) -> None:
    if kwargs:
        raise TypeError(f"{owner}() takes no keyword arguments")
    if len(args) != n:
        plural = "" if n == 1 else "s"
        raise TypeError(f"{owner}() takes exactly {n} argument{plural} ({len(args)} given)")


def _one_argument(owner: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    _check_arity(owner, args, kwargs, 1)
    return args[0]


def _parse_index(owner: str, what: str, value: object, minimum: int) -> int:
    """Validate an exact int >= *minimum* that fits a C ``ssize_t``."""
    if type(value) is not int:
        extra = " or None" if what == "maxsize" else ""
        raise TypeError(f"{owner}() {what} must be an int{extra}, not {type(value).__name__}")
    if not -sys.maxsize - 1 <= value <= sys.maxsize:
        raise OverflowError("Python int too large to convert to C ssize_t")
    if value < minimum:
        raise ValueError(f"{owner}() {what} must be >= {minimum}, not {value}")
    return value


def _fixed(
    owner: str, args: tuple[Any, ...], kwargs: dict[str, Any], n: int, callables: int
) -> tuple[Any, ...]:
    """Check a constructor's *n* positional arguments, the first *callables* callable."""
    _check_arity(owner, args, kwargs, n)
    for position in range(callables):
        _check_callable(owner, position + 1, args[position])
    return args


def _repr_call(name: str, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> str:
    parts = [repr(a) for a in args]
    if kwargs:
        parts.extend(f"{k}={v!r}" for k, v in kwargs.items())
    return f"{name}({', '.join(parts)})"


class _Identity:
    """identity(x) -> x"""

    __slots__ = ()
    __name__ = "identity"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _one_argument("identity", args, kwargs)

    def __repr__(self) -> str:
        return "identity"

    def __reduce__(self) -> str:
        return "identity"


_Identity.__name__ = _Identity.__qualname__ = "identity_type"
identity = _Identity()


class _Functions:
    """Base of combinators built from a non-empty tuple of callables."""

    __slots__ = ("functions",)
    _what = "function"

    def __init__(self, *functions: Callable[..., Any], **kwargs: Any) -> None:
        owner = type(self).__name__
        if kwargs:
            raise TypeError(f"{owner}() takes no keyword arguments")
        _check_functions(owner, functions, self._what)
        self.functions = functions

    def __repr__(self) -> str:
        return _repr_call(type(self).__name__, self.functions)


class compose(_Functions):
    """compose(f, g, h)(*args, **kwargs) == h(g(f(*args, **kwargs)))

    Functions are applied left to right, like a shell pipeline: the first
    receives the call's arguments, each later one the previous result.
    """

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        functions = self.functions
        result = functions[0](*args, **kwargs)
        for function in functions[1:]:
            result = function(result)
        return result


class sequence(_Functions):
    """sequence(f, g)(*a, **k) calls f(*a, **k) then g(*a, **k); returns g's result."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = None
        for function in self.functions:
            result = function(*args, **kwargs)
        return result


class juxt(_Functions):
    """juxt(f, g)(*a, **k) == (f(*a, **k), g(*a, **k))"""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        return tuple([function(*args, **kwargs) for function in self.functions])


class first_of(_Functions):
    """first_of(f, g)(*a, **k): the first result that is not None, else None."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for function in self.functions:
            result = function(*args, **kwargs)
            if result is not None:
                return result
        return None


class and_(_Functions):
    """and_(p, q)(*a, **k) == bool(p(*a, **k) and q(*a, **k)), short-circuiting."""

    __slots__ = ()
    _what = "predicate"

    def __call__(self, *args: Any, **kwargs: Any) -> bool:
        return all(predicate(*args, **kwargs) for predicate in self.functions)


class or_(_Functions):
    """or_(p, q)(*a, **k) == bool(p(*a, **k) or q(*a, **k)), short-circuiting."""

    __slots__ = ()
    _what = "predicate"

    def __call__(self, *args: Any, **kwargs: Any) -> bool:
        return any(predicate(*args, **kwargs) for predicate in self.functions)


class not_:
    """not_(p)(*a, **k) == (not p(*a, **k))"""

    __slots__ = ("predicate",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        (predicate,) = _fixed("not_", args, kwargs, 1, 1)
        self.predicate = predicate

    def __call__(self, *args: Any, **kwargs: Any) -> bool:
        return not self.predicate(*args, **kwargs)

    def __repr__(self) -> str:
        return _repr_call("not_", (self.predicate,))


class partial:
    """partial(f, *args, **kw)(*more, **kw2) == f(*args, *more, **{**kw, **kw2})"""

    __slots__ = ("args", "func", "keywords")

    def __init__(self, *args: Any, **keywords: Any) -> None:
        if not args:
            raise TypeError("partial() needs at least one argument: the function to call")
        _check_callable("partial", 1, args[0])
        self.func = args[0]
        self.args = args[1:]
        self.keywords = keywords

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        if self.keywords:
            kwargs = {**self.keywords, **kwargs}
        return self.func(*self.args, *args, **kwargs)

    def __repr__(self) -> str:
        return _repr_call("partial", (self.func, *self.args), self.keywords)


class dispatch:
    """dispatch(p1, f1, p2, f2, ..., [default])

    Calls the function paired with the first predicate that returns a true
    value for the call's arguments.  With an odd number of arguments the last
    one is the default, called when no predicate matches; without a default a
    call that matches nothing raises ``TypeError``.
    """

    __slots__ = ("branches", "default")

    def __init__(self, *args: Callable[..., Any], **kwargs: Any) -> None:
        if kwargs:
            raise TypeError("dispatch() takes no keyword arguments")
        if len(args) < 2:
            raise TypeError("dispatch() needs at least one predicate and function pair")
        for position, value in enumerate(args, 1):
            _check_callable("dispatch", position, value)
        pairs = len(args) // 2
        self.branches = tuple((args[2 * i], args[2 * i + 1]) for i in range(pairs))
        self.default = args[-1] if len(args) % 2 else None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for predicate, function in self.branches:
            if predicate(*args, **kwargs):
                return function(*args, **kwargs)
        if self.default is None:
            raise TypeError("dispatch: no predicate matched and there is no default")
        return self.default(*args, **kwargs)

    def __repr__(self) -> str:
        flat = [f for branch in self.branches for f in branch]
        if self.default is not None:
            flat.append(self.default)
        return _repr_call("dispatch", tuple(flat))


class when:
    """when(p, f)(*a, **k) == (f(*a, **k) if p(*a, **k) else None)"""

    __slots__ = ("function", "predicate")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        predicate, function = _fixed("when", args, kwargs, 2, 2)
        self.predicate = predicate
        self.function = function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.predicate(*args, **kwargs):
            return self.function(*args, **kwargs)
        return None

    def __repr__(self) -> str:
        return _repr_call("when", (self.predicate, self.function))


class if_then_else:
    """if_then_else(p, f, g)(*a, **k) == (f if p(*a, **k) else g)(*a, **k)"""

    __slots__ = ("otherwise", "predicate", "then")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        predicate, then, otherwise = _fixed("if_then_else", args, kwargs, 3, 3)
        self.predicate = predicate
        self.then = then
        self.otherwise = otherwise

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.predicate(*args, **kwargs):
            return self.then(*args, **kwargs)
        return self.otherwise(*args, **kwargs)

    def __repr__(self) -> str:
        return _repr_call("if_then_else", (self.predicate, self.then, self.otherwise))


class constantly:
    """constantly(v)(*a, **k) == v"""

    __slots__ = ("value",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        (self.value,) = _fixed("constantly", args, kwargs, 1, 0)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.value

    def __repr__(self) -> str:
        return _repr_call("constantly", (self.value,))


def _check_classinfo(owner: str, cls: object, allow_tuple: bool) -> None:
    if isinstance(cls, type):
        return
    if allow_tuple and isinstance(cls, tuple) and all(isinstance(c, type) for c in cls):
        return
    expected = "a type or a tuple of types" if allow_tuple else "a type"
    raise TypeError(f"{owner}() argument must be {expected}, not {type(cls).__name__}")


class is_instance:
    """is_instance(cls)(x) == isinstance(x, cls)"""

    __slots__ = ("cls",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = _one_argument("is_instance", args, kwargs)
        _check_classinfo("is_instance", cls, allow_tuple=True)
        self.cls = cls

    def __call__(self, *args: Any, **kwargs: Any) -> bool:
        return isinstance(_one_argument("is_instance", args, kwargs), self.cls)

    def __repr__(self) -> str:
        return _repr_call("is_instance", (self.cls,))


class is_type:
    """is_type(cls)(x) == (type(x) is cls)"""

    __slots__ = ("cls",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = _one_argument("is_type", args, kwargs)
        _check_classinfo("is_type", cls, allow_tuple=False)
        self.cls = cls

    def __call__(self, *args: Any, **kwargs: Any) -> bool:
        return type(_one_argument("is_type", args, kwargs)) is self.cls

    def __repr__(self) -> str:
        return _repr_call("is_type", (self.cls,))


class arg:
    """arg(n)(*a, **k) == a[n]: select one positional argument."""

    __slots__ = ("index",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.index = _parse_index("arg", "index", _one_argument("arg", args, kwargs), 0)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.index >= len(args):
            raise TypeError(
                f"arg({self.index}) needs at least {self.index + 1} positional "
                f"arguments ({len(args)} given)"
            )
        return args[self.index]

    def __repr__(self) -> str:
        return _repr_call("arg", (self.index,))


class _Wrapper:
    """Base of combinators that stand in for one wrapped function."""

    __slots__ = ("__wrapped__",)

    @property
    def __name__(self) -> str:
        return getattr(self.__wrapped__, "__name__", type(self).__name__)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return MethodType(self, instance)


class side_effect(_Wrapper):
    """side_effect(f)(x, *a, **k) calls f(x, *a, **k) and returns x."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        (self.__wrapped__,) = _fixed("side_effect", args, kwargs, 1, 1)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not args:
            raise TypeError("side_effect() needs at least one positional argument to return")
        self.__wrapped__(*args, **kwargs)
        return args[0]

    def __repr__(self) -> str:
        return _repr_call("side_effect", (self.__wrapped__,))


class _Kwmark:
    """Separates positional arguments from keywords inside memoize keys."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<memoize keyword marker>"


_KWMARK = _Kwmark()


class memoize(_Wrapper):
    """memoize(f, maxsize=None): cache f's results by its arguments.

    The key is the tuple of positional arguments, followed by the keyword
    arguments in call order when there are any, compared by equality (so
    ``f(1)`` and ``f(1.0)`` share an entry, as in a dict).  Every argument
    must be hashable.  With ``maxsize`` the cache keeps the ``maxsize`` most
    recently used entries.  Exceptions are not cached.
    """

    __slots__ = ("_cache", "_hits", "_maxsize", "_misses")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        maxsize = args[1] if len(args) > 1 else None
        for name, value in kwargs.items():
            if name != "maxsize":
                raise TypeError(f"memoize() got an unexpected keyword argument '{name}'")
            if len(args) > 1:
                raise TypeError("memoize() got multiple values for argument 'maxsize'")
            maxsize = value
        if not 1 <= len(args) <= 2:
            raise TypeError(f"memoize() takes 1 or 2 positional arguments ({len(args)} given)")
        _check_callable("memoize", 1, args[0])
        if maxsize is not None:
            maxsize = _parse_index("memoize", "maxsize", maxsize, 1)
        self.__wrapped__ = args[0]
        self._maxsize = maxsize
        self._cache: dict[Any, Any] = {} if maxsize is None else OrderedDict()
        self._hits = 0
        self._misses = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key: tuple[Any, ...] = args
        if kwargs:
            key = (*args, _KWMARK, *[item for pair in kwargs.items() for item in pair])
        cache = self._cache
        try:
            result = cache[key]
        except KeyError:
            pass
        except TypeError as exc:
            raise TypeError(f"memoize: arguments must be hashable ({exc})") from exc
        else:
            self._hits += 1
            if self._maxsize is not None:
                cache.move_to_end(key)  # type: ignore[attr-defined]
            return result
        self._misses += 1
        result = self.__wrapped__(*args, **kwargs)
        cache[key] = result
        if self._maxsize is not None:
            cache.move_to_end(key)  # type: ignore[attr-defined]
            while len(cache) > self._maxsize:
                cache.popitem(False)  # type: ignore[call-arg]
        return result

    def cache_info(self) -> tuple[int, int, int | None, int]:
        """Return ``(hits, misses, maxsize, currsize)``."""
        return (self._hits, self._misses, self._maxsize, len(self._cache))

    def cache_clear(self) -> None:
        """Forget every cached result and reset the statistics."""
        self._cache = {} if self._maxsize is None else OrderedDict()
        self._hits = 0
        self._misses = 0

    def __repr__(self) -> str:
        if self._maxsize is None:
            return _repr_call("memoize", (self.__wrapped__,))
        return _repr_call("memoize", (self.__wrapped__,), {"maxsize": self._maxsize})


for _name in __all__:
    _obj = globals()[_name]
    (_obj if isinstance(_obj, type) else type(_obj)).__module__ = "retracesoftware.functional"
del _name, _obj
