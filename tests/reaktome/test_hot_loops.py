"""Hooks fire on every iteration of loops the adaptive interpreter has specialised.

CPython 3.11+ rewrites hot instructions into type-specialised forms (STORE_SUBSCR_LIST_INT,
STORE_SUBSCR_DICT, CALL_LIST_APPEND / CALL_NO_KW_LIST_APPEND, STORE_ATTR_INSTANCE_VALUE, ...)
that skip slot and method lookups for exact builtin types.  Each loop below first runs on an
unpatched instance (so it specialises for the builtin type), then on a patched one, then on a
patched-mid-loop one, then on a fresh unpatched one again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import reaktome

N = 10_000
ADD, SET, DEL = "__reaktome_additem__", "__reaktome_setitem__", "__reaktome_delitem__"
DISCARD, SETATTR, DELATTR = (
    "__reaktome_discarditem__",
    "__reaktome_setattr__",
    "__reaktome_delattr__",
)


class Obj:
    pass


def list_append(lst, n, at, patch):
    for i in range(n):
        if i == at:
            patch()
        lst.append(i)


def list_setitem(lst, n, at, patch):
    for i in range(n):
        if i == at:
            patch()
        lst[i] = i


def list_setitem_negative(lst, n, at, patch):
    for i in range(n):
        if i == at:
            patch()
        lst[-1] = i


def list_insert(lst, n, at, patch):
    for i in range(n):
        if i == at:
            patch()
        lst.insert(0, i)


def list_pop(lst, n, at, patch):
    for i in range(n):
        if i == at:
            patch()
        lst.pop()


def list_del(lst, n, at, patch):
    for i in range(n):
        if i == at:
            patch()
        del lst[-1]


def list_iadd(lst, n, at, patch):
    for i in range(n):
        if i == at:
            patch()
        lst += (i,)


def list_extend(lst, n, at, patch):
    for i in range(n):
        if i == at:
            patch()
        lst.extend((i,))


def dict_add(d, n, at, patch):
    for i in range(n):
        if i == at:
            patch()
        d[i] = i


def dict_set_str(d, n, at, patch):
    for i in range(n):
        if i == at:
            patch()
        d["k"] = i


def dict_del(d, n, at, patch):
    for i in range(n):
        if i == at:
            patch()
        del d[i]


def dict_pop(d, n, at, patch):
    for i in range(n):
        if i == at:
            patch()
        d.pop(i)


def dict_setdefault(d, n, at, patch):
    for i in range(n):
        if i == at:
            patch()
        d.setdefault(-i - 1, i)


def set_add(s, n, at, patch):
    for i in range(n):
        if i == at:
            patch()
        s.add(i)


def set_discard(s, n, at, patch):
    for i in range(n):
        if i == at:
            patch()
        s.discard(i)


def obj_setattr(o, n, at, patch):
    for i in range(n):
        if i == at:
            patch()
        o.x = i


def obj_delattr(o, n, at, patch):
    for i in range(n):
        if i == at:
            patch()
        o.x = i
        del o.x


CASES: list[tuple[Callable[..., None], Callable[[], Any], Callable[..., None], str]] = [
    (list_append, list, reaktome.patch_list, ADD),
    (list_setitem, lambda: list(range(N)), reaktome.patch_list, SET),
    (list_setitem_negative, lambda: [0], reaktome.patch_list, SET),
    (list_insert, list, reaktome.patch_list, ADD),
    (list_pop, lambda: list(range(N)), reaktome.patch_list, DEL),
    (list_del, lambda: list(range(N)), reaktome.patch_list, DEL),
    (list_iadd, list, reaktome.patch_list, ADD),
    (list_extend, list, reaktome.patch_list, ADD),
    (dict_add, dict, reaktome.patch_dict, ADD),
    (dict_set_str, lambda: {"k": 0}, reaktome.patch_dict, SET),
    (dict_del, lambda: dict.fromkeys(range(N)), reaktome.patch_dict, DEL),
    (dict_pop, lambda: dict.fromkeys(range(N)), reaktome.patch_dict, DEL),
    (dict_setdefault, dict, reaktome.patch_dict, ADD),
    (set_add, set, reaktome.patch_set, ADD),
    (set_discard, lambda: set(range(N)), reaktome.patch_set, DISCARD),
    (obj_setattr, Obj, reaktome.patch_obj, SETATTR),
    (obj_delattr, Obj, reaktome.patch_obj, DELATTR),
]


@pytest.mark.parametrize(
    ("loop", "make", "patch", "name"), CASES, ids=[c[0].__name__ for c in CASES]
)
def test_specialised_loops_fire_every_time(loop, make, patch, name):
    calls: list[Any] = []

    def hook(instance: Any, key: Any, old: Any, new: Any) -> None:
        calls.append(key)

    def no_patch() -> None:
        pass

    # Warm up on plain instances: the loop specialises for the builtin type.
    for _ in range(3):
        plain = make()
        loop(plain, N, -1, no_patch)
    assert calls == []

    patched = make()
    patch(patched, {name: hook})
    loop(patched, N, -1, no_patch)
    assert len(calls) == N

    calls.clear()
    late = make()
    loop(late, N, N // 2, lambda: patch(late, {name: hook}))
    assert len(calls) == N - N // 2

    calls.clear()
    reference = make()
    loop(reference, N, -1, no_patch)
    again = make()
    loop(again, N, -1, no_patch)
    assert calls == []
    assert again == reference if not isinstance(again, Obj) else True
    reaktome.unpatch(patched)
    reaktome.unpatch(late)


def test_results_identical_to_unpatched():
    plain, patched = [], []
    reaktome.patch_list(patched, {ADD: lambda *a: None, SET: lambda *a: None})
    for lst in (plain, patched):
        list_append(lst, N, -1, lambda: None)
        list_setitem(lst, N, -1, lambda: None)
        list_insert(lst, 100, -1, lambda: None)
    assert patched == plain


SPECIALISED = {
    list_append: {"PRECALL_NO_KW_LIST_APPEND", "CALL_NO_KW_LIST_APPEND", "CALL_LIST_APPEND"},
    list_setitem: {"STORE_SUBSCR_LIST_INT"},
    dict_add: {"STORE_SUBSCR_DICT"},
    obj_setattr: {"STORE_ATTR_INSTANCE_VALUE"},
}


@pytest.mark.parametrize("loop", list(SPECIALISED), ids=[f.__name__ for f in SPECIALISED])
def test_loops_really_specialise(loop):
    """Guard for the tests above: the warmed loops use the fast paths that skip slots."""
    import dis

    make = next(c[1] for c in CASES if c[0] is loop)
    if make is Obj:
        make = type("Fresh", (), {})  # Obj itself is instrumented by the tests above

    def specialise(fn):
        fn = type(fn)(fn.__code__.replace(), fn.__globals__)  # fresh caches
        for _ in range(3):
            fn(make(), N, -1, lambda: None)
        return {i.opname for i in dis.get_instructions(fn, adaptive=True)}

    assert specialise(loop) & SPECIALISED[loop]
