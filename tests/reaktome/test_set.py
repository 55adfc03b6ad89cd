"""Every set operation fires the documented hook: key is the element, old and new are None."""

from __future__ import annotations

import pytest

import reaktome

ADD, DISCARD = "__reaktome_additem__", "__reaktome_discarditem__"


def patched(rec, items=()):
    s = set(items)
    reaktome.patch_set(s, rec.hooks(ADD, DISCARD))
    return s


def keys(events):
    return sorted((kind, key) for kind, key, _, _ in events)


def test_add_and_noop_add(rec):
    s = patched(rec, {1})
    s.add(2)
    s.add(2)
    s.add(1)
    assert rec.take() == [("add", 2, None, None)]


def test_update_and_ior(rec):
    s = patched(rec, {1})
    s.update([1, 2], (3,))
    s |= {3, 4}
    s |= frozenset({5})
    assert s == {1, 2, 3, 4, 5}
    assert keys(rec.take()) == [("add", 2), ("add", 3), ("add", 4), ("add", 5)]
    with pytest.raises(TypeError):
        s |= [6]
    with pytest.raises(TypeError, match="not iterable"):
        s.update(5)
    assert rec.take() == []


def test_self_operations(rec):
    s = patched(rec, {1, 2})
    s |= s
    s.update(s)
    assert s == {1, 2}
    assert rec.take() == []
    s &= s
    assert rec.take() == []
    s ^= s
    assert s == set()
    assert keys(rec.take()) == [("discard", 1), ("discard", 2)]
    s.update({3, 4})
    rec.take()
    s -= s
    assert s == set()
    assert keys(rec.take()) == [("discard", 3), ("discard", 4)]


def test_removals(rec):
    s = patched(rec, range(10))
    s.discard(0)
    s.discard(99)
    s.remove(1)
    with pytest.raises(KeyError):
        s.remove(99)
    popped = s.pop()
    assert keys(rec.take()) == sorted([("discard", 0), ("discard", 1), ("discard", popped)])
    s.add(popped)
    assert rec.take() == [("add", popped, None, None)]
    s.difference_update([2, 3], {4, 100})
    s -= {5}
    assert keys(rec.take()) == [("discard", 2), ("discard", 3), ("discard", 4), ("discard", 5)]
    s.intersection_update({6, 7, 8, 100})
    s &= {6, 7}
    remaining = {6, 7}
    assert s == remaining
    assert ("discard", 8) in keys(rec.take())
    s.clear()
    assert keys(rec.take()) == sorted(("discard", v) for v in remaining)


def test_symmetric_difference(rec):
    s = patched(rec, {1, 2})
    s.symmetric_difference_update([2, 3])
    assert s == {1, 3}
    assert rec.take() == [("discard", 2, None, None), ("add", 3, None, None)]
    s ^= {1, 4}
    assert keys(rec.take()) == [("add", 4), ("discard", 1)]


def test_init_on_existing_set(rec):
    s = patched(rec, {1, 2})
    s.__init__([2, 3])
    assert s == {2, 3}
    assert rec.take() == [("discard", 1, None, None), ("add", 3, None, None)]


def test_repr_pickle_copy(rec):
    import copy
    import pickle

    s = patched(rec, {1})
    assert repr(s) == "{1}"
    assert repr(patched(rec)) == "set()"
    for clone in (pickle.loads(pickle.dumps(s)), copy.copy(s), copy.deepcopy(s), s.copy(), s | {2}):
        assert type(clone) is set
    assert s.__class__ is set
    assert rec.take() == []


def test_copies_have_the_plain_iteration_order(rec):
    import copy
    import pickle

    plain, patched_set = set(range(0, 60, 7)), set(range(0, 60, 7))
    reaktome.patch_set(patched_set, rec.hooks(ADD, DISCARD))
    for s in (plain, patched_set):
        s.update(set(range(100, 190, 3)))
        s.difference_update(range(100, 150))
    assert list(patched_set) == list(plain)
    for clone in (copy.copy, copy.deepcopy, lambda s: pickle.loads(pickle.dumps(s)), set.copy):
        assert list(clone(patched_set)) == list(clone(plain))
