"""Per-instance mutation hooks for lists, dicts, sets and Python objects.

``patch_list(lst, {"__reaktome_additem__": hook})`` makes ``hook(lst, key, old, new)`` run after
every element added to *that* list; every other list behaves exactly as before.  See
``docs/reaktome.md`` for the hook names, the arguments each operation passes and the design.
"""

from __future__ import annotations

import reaktome._reaktome as _reaktome

# The package imports nothing else at run time: importing it must not disturb the process it
# watches (not even by loading typing).  Type checkers read the block below.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, TypeVar

    Hook = Callable[[Any, Any, Any, Any], object]
    """A hook: called as ``hook(instance, key, old, new)`` after the mutation."""

    _T = TypeVar("_T")

__all__ = [
    "HOOK_NAMES",
    "Hook",
    "hooks",
    "patch_dict",
    "patch_list",
    "patch_obj",
    "patch_set",
    "unpatch",
]

HOOK_NAMES: dict[str, tuple[str, ...]] = {
    "list": ("__reaktome_additem__", "__reaktome_setitem__", "__reaktome_delitem__"),
    "dict": ("__reaktome_additem__", "__reaktome_setitem__", "__reaktome_delitem__"),
    "set": ("__reaktome_additem__", "__reaktome_discarditem__"),
    "obj": ("__reaktome_setattr__", "__reaktome_delattr__"),
}
"""The hook names each ``patch_*`` function accepts."""


def __getattr__(name: str) -> object:
    if name == "Hook":  # built on first use, so that typing is only imported when needed
        from collections.abc import Callable
        from typing import Any

        return Callable[[Any, Any, Any, Any], object]
    raise AttributeError(f"module 'reaktome' has no attribute {name!r}")


def _as_dict(hooks: Mapping[str, Hook | None], func: str) -> dict[str, Hook | None]:
    if isinstance(hooks, dict):
        return hooks
    kind = type(hooks)
    if not (hasattr(kind, "keys") and hasattr(kind, "__getitem__")):
        raise TypeError(
            f"{func}() argument 2 must be a mapping of hook callables, not {kind.__name__}"
        )
    return dict(hooks)


def patch_list(lst: list[_T], hooks: Mapping[str, Hook | None]) -> None:
    """Merge *hooks* into the entry of the exact ``list`` *lst* (a ``None`` value removes one)."""
    _reaktome.patch_list(lst, _as_dict(hooks, "patch_list"))


def patch_dict(d: dict[Any, Any], hooks: Mapping[str, Hook | None]) -> None:
    """Merge *hooks* into the entry of the exact ``dict`` *d* (a ``None`` value removes one)."""
    _reaktome.patch_dict(d, _as_dict(hooks, "patch_dict"))


def patch_set(s: set[Any], hooks: Mapping[str, Hook | None]) -> None:
    """Merge *hooks* into the entry of the exact ``set`` *s* (a ``None`` value removes one)."""
    _reaktome.patch_set(s, _as_dict(hooks, "patch_set"))


def patch_obj(obj: object, hooks: Mapping[str, Hook | None]) -> None:
    """Merge attribute *hooks* into the entry of *obj*, an instance of a Python class."""
    _reaktome.patch_obj(obj, _as_dict(hooks, "patch_obj"))


def unpatch(obj: object) -> bool:
    """Drop every hook of *obj*; return whether it had any."""
    return _reaktome.unpatch(obj)


def hooks(obj: object) -> dict[str, Hook] | None:
    """Return a copy of *obj*'s hooks, or ``None`` when it is not patched."""
    return _reaktome.hooks(obj)
