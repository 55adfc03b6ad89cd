"""Entries die with their instances; nothing leaks on patched or unpatched paths.

Leak checks use reference counts of the objects involved (hooks, keys, values, shadow types),
``sys.getallocatedblocks()`` (every pymalloc block alive) and tracemalloc.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

import reaktome
from reaktome import _reaktome

ADD, SET, DEL = "__reaktome_additem__", "__reaktome_setitem__", "__reaktome_delitem__"
DISCARD, SETATTR = "__reaktome_discarditem__", "__reaktome_setattr__"


def noop(instance, key, old, new):
    return None


class Obj:
    pass


def entries() -> int:
    return _reaktome._table_stats()["entries"]


@pytest.mark.parametrize(
    ("make", "patch", "name"),
    [
        (list, reaktome.patch_list, ADD),
        (dict, reaktome.patch_dict, ADD),
        (set, reaktome.patch_set, ADD),
        (Obj, reaktome.patch_obj, SETATTR),
    ],
)
def test_entry_dies_with_instance(make, patch, name):
    gc.collect()
    before = entries()
    instance = make()
    patch(instance, {name: noop})
    assert entries() == before + 1
    del instance
    assert entries() == before


def test_entry_dies_in_garbage_cycle():
    gc.collect()
    before = entries()
    lst: list[object] = []
    d: dict[str, object] = {}
    o = Obj()
    reaktome.patch_list(lst, {ADD: noop})
    reaktome.patch_dict(d, {ADD: noop})
    reaktome.patch_obj(o, {SETATTR: noop})
    lst.append(d)
    d["o"] = o
    o.lst = lst
    del lst, d, o
    gc.collect()
    assert entries() == before


@pytest.mark.parametrize(
    ("make", "patch", "name", "mutate"),
    [
        (lambda: [], reaktome.patch_list, ADD, lambda x: x.append(1)),
        (lambda: {}, reaktome.patch_dict, ADD, lambda x: x.__setitem__("k", 1)),
        (set, reaktome.patch_set, ADD, lambda x: x.add(1)),
        (Obj, reaktome.patch_obj, SETATTR, lambda x: setattr(x, "k", 1)),
    ],
)
def test_new_object_at_same_address_has_no_hooks(make, patch, name, mutate):
    calls: list[object] = []
    reused = 0
    for _ in range(200):
        instance = make()
        patch(instance, {name: lambda *args: calls.append(args)})
        address = id(instance)
        fresh: list[object] = [None] * 8  # allocated before the instance dies
        del instance
        for k in range(8):
            fresh[k] = candidate = make()
            if id(candidate) == address:
                reused += 1
                assert reaktome.hooks(candidate) is None
                assert candidate.__class__ is type(candidate)
                mutate(candidate)
        del fresh, candidate
    assert reused > 0, "the allocator never reused an address; the test proves nothing"
    assert calls == []


@pytest.mark.slow
def test_millions_of_short_lived_patched_objects_do_not_grow_memory():
    hooks = {ADD: noop}
    gc.collect()
    base_entries = entries()

    def churn(n: int) -> None:
        for i in range(n):
            lst = [i]
            reaktome.patch_list(lst, hooks)
            lst.append(i)
            d = {}
            reaktome.patch_dict(d, hooks)
            d[i] = i

    churn(10_000)
    gc.collect()
    blocks = sys.getallocatedblocks()
    churn(1_000_000)
    gc.collect()
    grown = sys.getallocatedblocks() - blocks
    stats = _reaktome._table_stats()
    assert stats["entries"] == base_entries
    assert stats["capacity"] <= 1024
    assert grown < 1_000, f"{grown} blocks survived two million patched objects"


def test_table_shrinks_after_burst():
    gc.collect()
    many = [[] for _ in range(50_000)]
    for lst in many:
        reaktome.patch_list(lst, {ADD: noop})
    assert _reaktome._table_stats()["capacity"] >= 65_536
    del many
    gc.collect()
    assert _reaktome._table_stats()["capacity"] <= 1024


def traced_growth(work: Callable[[], None], rounds: int = 5) -> int:
    """Bytes still allocated after `rounds` more runs of work, compared with after one run."""
    tracemalloc.start()
    try:
        work()
        work()
        gc.collect()
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(rounds):
            work()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()


def block_growth(work: Callable[[], None], rounds: int = 5) -> int:
    """Blocks still allocated after `rounds` more runs of work, after three warm-up runs.

    A leak of one block per operation would show as tens of thousands of blocks; the warm-up
    lets interpreter caches and free lists settle first.
    """
    for _ in range(3):
        work()
    gc.collect()
    start = sys.getallocatedblocks()
    for _ in range(rounds):
        work()
    gc.collect()
    return sys.getallocatedblocks() - start


def every_operation(patched: bool) -> Callable[[], None]:
    """Exercise every hooked operation once per element, on patched or plain instances."""
    all_hooks = {ADD: noop, SET: noop, DEL: noop}

    def work() -> None:
        for _ in range(200):
            lst = list(range(10))
            d = dict.fromkeys(range(10), 0)
            s = set(range(10))
            o = Obj()
            if patched:
                reaktome.patch_list(lst, all_hooks)
                reaktome.patch_dict(d, all_hooks)
                reaktome.patch_set(s, {ADD: noop, DISCARD: noop})
                reaktome.patch_obj(o, {SETATTR: noop, "__reaktome_delattr__": noop})
            lst.append(1)
            lst.insert(0, 2)
            lst.extend([3, 4])
            lst += [5]
            lst *= 2
            lst[0] = 6
            lst[1:3] = [7, 8, 9]
            del lst[::3]
            lst.pop()
            lst.remove(7)
            lst.sort()
            lst.reverse()
            lst.extend(lst)
            lst.clear()
            d[100] = 1
            d[0] = 2
            d.update(d)
            d.update({200: 1}, x=2)
            d |= {300: 3}
            d.setdefault(400, 4)
            d.pop(400)
            d.popitem()
            del d[0]
            d.clear()
            s.add(100)
            s.update([200, 300])
            s |= s
            s -= {1}
            s &= set(range(50, 400))
            s ^= {100, 7}
            s.discard(7)
            s.pop()
            s.clear()
            o.x = 1
            o.x = 2
            del o.x

    return work


@pytest.mark.parametrize("patched", [True, False], ids=["patched", "unpatched"])
def test_no_leak_blocks(patched):
    assert block_growth(every_operation(patched)) < 20


@pytest.mark.parametrize("patched", [True, False], ids=["patched", "unpatched"])
def test_no_leak_tracemalloc(patched):
    assert traced_growth(every_operation(patched), rounds=3) < 2_048


def test_refcounts_of_hooks_keys_values_and_types():
    key, value = object(), object()
    hook_calls = []

    def hook(instance, k, old, new):
        hook_calls.append(1)

    lst: list[object] = []
    d: dict[object, object] = {}
    s: set[object] = set()
    reaktome.patch_list(lst, {ADD: hook, SET: hook, DEL: hook})
    reaktome.patch_dict(d, {ADD: hook, SET: hook, DEL: hook})
    reaktome.patch_set(s, {ADD: hook, DISCARD: hook})
    shadow_types = (type(lst), type(d), type(s))
    counts = [sys.getrefcount(x) for x in (key, value, hook, *shadow_types)]
    for _ in range(1_000):
        lst.append(value)
        lst[0] = value
        lst.pop()
        d[key] = value
        d[key] = value
        d.update({key: value})
        del d[key]
        s.add(key)
        s.discard(key)
        reaktome.patch_list(lst, {ADD: hook})  # re-merging replaces the hooks dict
    others = [[] for _ in range(1_000)]
    for other in others:
        reaktome.patch_list(other, {ADD: hook})
    for other in others:
        reaktome.unpatch(other)
    del others
    hook_calls.clear()
    assert [sys.getrefcount(x) for x in (key, value, hook, *shadow_types)] == counts
    assert lst == [] and d == {} and s == set()


def test_refcount_of_instance_unchanged_by_patching():
    lst: list[int] = []
    before = sys.getrefcount(lst)
    reaktome.patch_list(lst, {ADD: noop})
    assert sys.getrefcount(lst) == before
    reaktome.unpatch(lst)
    assert sys.getrefcount(lst) == before
    o = Obj()
    before = sys.getrefcount(o)
    reaktome.patch_obj(o, {SETATTR: noop})
    assert sys.getrefcount(o) == before


def test_deeply_nested_patched_containers_die_through_the_trashcan():
    gc.collect()
    before = entries()
    top: list[object] = []
    current: list[object] = top
    for i in range(100_000):
        child: Any = [] if i % 2 else {}
        if isinstance(child, list):
            reaktome.patch_list(child, {ADD: noop})
            current.append(child)
        else:
            reaktome.patch_dict(child, {ADD: noop})
            current.append(child)
            child["next"] = nested = []
            reaktome.patch_list(nested, {ADD: noop})
            child = nested
        current = child
    assert entries() == before + 150_000
    del top, current, child, nested
    gc.collect()
    assert entries() == before


def test_hook_dropping_the_last_outside_reference():
    holder = {"lst": []}
    lst = holder["lst"]
    calls = []

    def hook(instance, key, old, new):
        calls.append(key)
        holder.clear()

    reaktome.patch_list(lst, {ADD: hook})
    del lst
    holder["lst"].append(1)  # the hook drops the dict entry, the last reference
    assert calls == [0]
    assert holder == {}
