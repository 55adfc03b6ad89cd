"""Every dict operation fires the documented hook with the documented arguments."""

from __future__ import annotations

import pytest

import reaktome

ADD, SET, DEL = "__reaktome_additem__", "__reaktome_setitem__", "__reaktome_delitem__"


def patched(rec, items=None):
    d = dict(items or {})
    reaktome.patch_dict(d, rec.hooks(ADD, SET, DEL))
    return d


def test_setitem_new_and_existing(rec):
    d = patched(rec, {"a": 1})
    d["b"] = 2
    d["a"] = 3
    assert d == {"a": 3, "b": 2}
    assert rec.take() == [("add", "b", None, 2), ("set", "a", 1, 3)]


def test_delitem_pop_popitem_clear(rec):
    d = patched(rec, {"a": 1, "b": 2, "c": 3, "d": 4})
    del d["a"]
    assert d.pop("b") == 2
    assert d.pop("zz", None) is None
    assert d.popitem() == ("d", 4)
    d["e"] = 5
    rec.take()
    d.clear()
    assert d == {}
    assert rec.take() == [("del", "c", 3, None), ("del", "e", 5, None)]
    with pytest.raises(KeyError):
        del d["nope"]
    with pytest.raises(KeyError):
        d.pop("nope")
    with pytest.raises(KeyError):
        d.popitem()
    assert rec.take() == []


def test_delete_events(rec):
    d = patched(rec, {"a": 1, "b": 2, "c": 3})
    del d["a"]
    d.pop("b")
    d.popitem()
    assert rec.take() == [("del", "a", 1, None), ("del", "b", 2, None), ("del", "c", 3, None)]


def test_update_forms(rec):
    d = patched(rec, {"a": 1})
    d.update({"a": 2, "b": 3})
    d.update([("c", 4)], d=5)
    d.update(e=6)
    assert d == {"a": 2, "b": 3, "c": 4, "d": 5, "e": 6}
    assert rec.take() == [
        ("set", "a", 1, 2),
        ("add", "b", None, 3),
        ("add", "c", None, 4),
        ("add", "d", None, 5),
        ("add", "e", None, 6),
    ]
    with pytest.raises(TypeError, match="update expected at most 1 argument"):
        d.update({}, {})
    with pytest.raises(ValueError, match="has length 3; 2 is required"):
        d.update([("x", 1), (1, 2, 3)])
    # Entries read before the error are applied, as by dict.update itself.
    assert d["x"] == 1
    assert rec.take() == [("add", "x", None, 1)]


def test_update_self_and_ior_self(rec):
    d = patched(rec, {"a": 1, "b": 2})
    d.update(d)
    assert d == {"a": 1, "b": 2}
    assert rec.take() == [("set", "a", 1, 1), ("set", "b", 2, 2)]
    d |= d
    assert d == {"a": 1, "b": 2}
    assert rec.take() == [("set", "a", 1, 1), ("set", "b", 2, 2)]
    d |= [("c", 3)]
    assert rec.take() == [("add", "c", None, 3)]


def test_setdefault(rec):
    d = patched(rec, {"a": 1})
    assert d.setdefault("a", 5) == 1
    assert d.setdefault("b") is None
    assert d.setdefault("c", 7) == 7
    assert rec.take() == [("add", "b", None, None), ("add", "c", None, 7)]


def test_init_on_existing_dict(rec):
    d = patched(rec, {"a": 1})
    d.__init__({"a": 2}, b=3)
    assert d == {"a": 2, "b": 3}
    assert rec.take() == [("set", "a", 1, 2), ("add", "b", None, 3)]
    d.__init__(c=4)
    d.__init__(iter([("c", 5)]))
    assert rec.take() == [("add", "c", None, 4), ("set", "c", 4, 5)]


def test_pickle_copy_and_views(rec):
    import copy
    import json
    import pickle

    d = patched(rec, {"a": [1]})
    d["self"] = d
    for clone in (pickle.loads(pickle.dumps(d)), copy.copy(d), copy.deepcopy(d), d.copy(), d | {}):
        assert type(clone) is dict
        assert clone["a"] == [1]
    del d["self"]
    assert json.loads(json.dumps(d)) == {"a": [1]}
    assert list(d.items()) == [("a", [1])]
    assert d.__class__ is dict
    assert type(type(d).fromkeys("ab")) is dict
    rec.take()
