"""Plain value classes: what ``@dataclass`` gives, written out once.

``dataclasses`` imports ``inspect`` (and with it ``ast``, ``dis``, ``tokenize``) and generates
every method with ``exec``: together a large part of Retrace's start-up.  A subclass lists its
fields in order in ``_FIELDS`` (and usually ``__slots__ = _FIELDS``) and writes its own
``__init__``; it gets the dataclass ``__repr__``, ``__eq__`` and ``__match_args__``.
"""

from __future__ import annotations

__all__ = ["FrozenRecord", "Record"]


class Record:
    """Fields compared by value (between instances of the same class), shown as
    ``Name(field=value, ...)``; unhashable, like a mutable dataclass."""

    __slots__ = ()
    _FIELDS: tuple[str, ...] = ()
    __hash__ = None  # type: ignore[assignment]

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls.__match_args__ = cls._FIELDS

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._fields() == other._fields()  # type: ignore[attr-defined]
        return NotImplemented

    def __repr__(self) -> str:
        body = ", ".join(f"{n}={v!r}" for n, v in zip(self._FIELDS, self._fields(), strict=True))
        return f"{type(self).__qualname__}({body})"


class FrozenRecord(Record):
    """A :class:`Record` whose fields cannot be assigned after ``__init__`` (which sets them
    with ``object.__setattr__``); hashable by value, like a frozen dataclass."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), self._fields())
