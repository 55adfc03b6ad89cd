"""Wrong input, failing hooks and output discipline."""

from __future__ import annotations

import collections

import pytest

import reaktome
from reaktome import _reaktome

ADD, SET, DEL = "__reaktome_additem__", "__reaktome_setitem__", "__reaktome_delitem__"
DISCARD = "__reaktome_discarditem__"


class MyList(list):
    pass


class MyDict(dict):
    pass


class MySet(set):
    pass


@pytest.mark.parametrize(
    ("patch", "value", "message"),
    [
        (reaktome.patch_list, (), "argument 1 must be list, not tuple"),
        (reaktome.patch_list, {}, "argument 1 must be list, not dict"),
        (reaktome.patch_dict, [], "argument 1 must be dict, not list"),
        (reaktome.patch_dict, collections.OrderedDict(), "does not support dict subclasses"),
        (reaktome.patch_set, frozenset(), "argument 1 must be set, not frozenset"),
        (reaktome.patch_list, MyList(), "does not support list subclasses"),
        (reaktome.patch_dict, MyDict(), "does not support dict subclasses"),
        (reaktome.patch_set, MySet(), "does not support set subclasses"),
        (reaktome.patch_list, None, "argument 1 must be list, not NoneType"),
    ],
)
def test_wrong_types_raise_type_error(patch, value, message):
    with pytest.raises(TypeError, match=message):
        patch(value, {ADD: print})
    assert reaktome.hooks(value) is None


def test_bad_hook_maps():
    lst: list[int] = []
    with pytest.raises(TypeError, match="mapping"):
        reaktome.patch_list(lst, [(ADD, print)])
    with pytest.raises(TypeError, match="must be a dict"):
        _reaktome.patch_list(lst, [(ADD, print)])
    with pytest.raises(ValueError, match="unknown hook name '__reaktome_additem'"):
        reaktome.patch_list(lst, {"__reaktome_additem": print})
    with pytest.raises(ValueError, match="unknown hook name"):
        reaktome.patch_set(set(), {SET: print})
    with pytest.raises(TypeError, match="must be callable or None, not int"):
        reaktome.patch_list(lst, {ADD: 1})
    with pytest.raises(TypeError, match="hook names must be str"):
        reaktome.patch_list(lst, {1: print})
    with pytest.raises(TypeError, match="takes 2 arguments"):
        _reaktome.patch_list(lst)
    assert type(lst) is list
    assert reaktome.hooks(lst) is None


def test_mapping_proxy_accepted(rec):
    import types

    lst: list[int] = []
    reaktome.patch_list(lst, types.MappingProxyType(rec.hooks(ADD)))
    lst.append(1)
    assert rec.take() == [("add", 0, None, 1)]


def test_hook_exception_goes_to_unraisablehook_and_keeps_mutation(unraisable):
    def boom(*args):
        raise RuntimeError("hook failed")

    lst, d, s = [], {}, set()
    reaktome.patch_list(lst, {ADD: boom, SET: boom, DEL: boom})
    reaktome.patch_dict(d, {ADD: boom, SET: boom, DEL: boom})
    reaktome.patch_set(s, {ADD: boom, DISCARD: boom})
    lst.append(1)
    lst.extend([2, 3])
    lst[0] = 9
    del lst[1]
    d["a"] = 1
    d.update(b=2)
    del d["a"]
    s.add(1)
    s |= {2}
    s.discard(1)
    assert lst == [9, 3]
    assert d == {"b": 2}
    assert s == {2}
    assert len(unraisable) == 11
    assert all(exc_type is RuntimeError for exc_type, _, _ in unraisable)
    assert all(obj is boom for _, _, obj in unraisable)


def test_hook_exception_does_not_mask_operation_error(unraisable):
    def boom(*args):
        raise RuntimeError("hook failed")

    lst = [3, 1, "x"]
    reaktome.patch_list(lst, {SET: boom})
    with pytest.raises(TypeError, match="not supported"):
        lst.sort()
    assert {type(e) for e, _, _ in unraisable} <= {RuntimeError}


def test_hook_may_mutate_and_unpatch_its_instance(rec):
    lst: list[int] = []

    def hook(instance, key, old, new):
        rec.events.append(("add", key, old, new))
        if new == 1:
            instance.append(2)  # re-entrant mutation fires again
        if new == 3:
            reaktome.unpatch(instance)

    reaktome.patch_list(lst, {ADD: hook})
    lst.extend([1, 3, 4])
    lst.append(5)
    assert lst == [1, 3, 4, 2, 5]
    assert rec.take() == [("add", 0, None, 1), ("add", 3, None, 2), ("add", 1, None, 3)]
    assert type(lst) is list


def test_no_output(capfd, unraisable):
    def boom(*args):
        raise ValueError("x")

    lst, d, s = [], {}, set()
    reaktome.patch_list(lst, {ADD: boom, DEL: boom})
    reaktome.patch_dict(d, {ADD: boom})
    reaktome.patch_set(s, {ADD: boom})
    for i in range(100):
        lst.append(i)
        d[i] = i
        s.add(i)
    lst.clear()
    reaktome.unpatch(lst)
    reaktome.unpatch(d)
    reaktome.unpatch(s)
    for bad in (1, "s", MyList()):
        with pytest.raises(TypeError):
            reaktome.patch_list(bad, {ADD: boom})
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert len(unraisable) == 400


def test_none_removes_and_empty_unpatches(rec):
    lst: list[int] = []
    reaktome.patch_list(lst, rec.hooks(ADD, DEL))
    reaktome.patch_list(lst, {ADD: None})
    assert set(reaktome.hooks(lst)) == {DEL}
    lst.append(1)
    lst.pop()
    assert rec.take() == [("del", 0, 1, None)]
    reaktome.patch_list(lst, {DEL: None})
    assert reaktome.hooks(lst) is None
    assert type(lst) is list
    reaktome.patch_list(lst, {})
    assert type(lst) is list
    reaktome.patch_list(lst, {ADD: None})
    assert type(lst) is list
    assert reaktome.unpatch(lst) is False
    assert reaktome.unpatch(42) is False


def test_hooks_accessor_returns_copy():
    d: dict[str, int] = {}
    reaktome.patch_dict(d, {ADD: print})
    got = reaktome.hooks(d)
    assert got == {ADD: print}
    got.clear()
    assert reaktome.hooks(d) == {ADD: print}
    reaktome.unpatch(d)
