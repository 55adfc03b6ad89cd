"""Attribute hooks on instances of Python classes."""

from __future__ import annotations

import dataclasses

import pytest

import reaktome

SETATTR, DELATTR = "__reaktome_setattr__", "__reaktome_delattr__"


class Plain:
    pass


class Slotted:
    __slots__ = ("__weakref__", "x")


class NoWeakref:
    __slots__ = ("x",)


class Custom:
    def __setattr__(self, name, value):
        object.__setattr__(self, name, value * 2)


def test_set_and_delete(rec):
    a, b = Plain(), Plain()
    reaktome.patch_obj(a, rec.hooks(SETATTR, DELATTR))
    a.x = 1
    a.x = 2
    del a.x
    b.x = 5
    del b.x
    assert rec.take() == [
        ("setattr", "x", None, 1),
        ("setattr", "x", 1, 2),
        ("delattr", "x", 2, None),
    ]
    assert type(a) is Plain
    assert a.__class__ is Plain
    with pytest.raises(AttributeError):
        del a.x
    assert rec.take() == []


def test_setattr_builtin_and_slots(rec):
    s = Slotted()
    reaktome.patch_obj(s, rec.hooks(SETATTR))
    setattr(s, "x", 1)  # noqa: B010 - the builtin path on purpose
    s.x = 2
    assert rec.take() == [("setattr", "x", None, 1), ("setattr", "x", 1, 2)]


def test_custom_setattr_runs_first(rec):
    c = Custom()
    reaktome.patch_obj(c, rec.hooks(SETATTR))
    c.v = 2
    assert c.v == 4
    assert rec.take() == [("setattr", "v", None, 2)]


def test_failed_store_fires_nothing(rec):
    @dataclasses.dataclass(frozen=True)
    class Frozen:
        x: int = 0

    f = Frozen()
    reaktome.patch_obj(f, rec.hooks(SETATTR))
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.x = 3
    assert rec.take() == []


def test_refusals():
    with pytest.raises(TypeError, match="weak references"):
        reaktome.patch_obj(NoWeakref(), {SETATTR: print})
    for bad in (1, "s", object(), Plain, len):
        with pytest.raises(TypeError, match="instance of a class defined in Python"):
            reaktome.patch_obj(bad, {SETATTR: print})
    lst: list[int] = []
    reaktome.patch_list(lst, {"__reaktome_additem__": print})
    with pytest.raises(TypeError, match="patch_list"):
        reaktome.patch_obj(lst, {SETATTR: print})
    reaktome.unpatch(lst)
    with pytest.raises(ValueError, match="unknown hook name"):
        reaktome.patch_obj(Plain(), {"__reaktome_additem__": print})


def test_subclass_instances_are_hooked_separately(rec):
    class Base:
        pass

    class Sub(Base):
        pass

    b, s = Base(), Sub()
    reaktome.patch_obj(b, rec.hooks(SETATTR))
    s.x = 1
    assert rec.take() == []
    reaktome.patch_obj(s, rec.hooks(SETATTR))
    s.x = 2
    b.y = 3
    assert rec.take() == [("setattr", "x", 1, 2), ("setattr", "y", None, 3)]


def test_object_setattr_still_works_on_instrumented_classes(rec):
    class Point:
        pass

    patched_point, other = Point(), Point()
    reaktome.patch_obj(patched_point, rec.hooks(SETATTR))
    object.__setattr__(other, "x", 1)
    object.__setattr__(patched_point, "x", 1)  # an explicit base call bypasses the hook
    assert (other.x, patched_point.x) == (1, 1)
    other.__setattr__("y", 2)
    patched_point.__setattr__("y", 2)
    assert rec.take() == [("setattr", "y", None, 2)]


def test_super_chain_fires_once(rec):
    class Base:
        def __setattr__(self, name, value):
            super().__setattr__(name, value + 1)

    class Sub(Base):
        def __setattr__(self, name, value):
            super().__setattr__(name, value * 10)

    base, sub = Base(), Sub()
    reaktome.patch_obj(base, rec.hooks(SETATTR))
    reaktome.patch_obj(sub, rec.hooks(SETATTR))
    base.v = 1
    sub.v = 1
    assert (base.v, sub.v) == (2, 11)
    assert rec.take() == [("setattr", "v", None, 1), ("setattr", "v", None, 1)]


def test_class_stays_usable_after_patching(rec):
    @dataclasses.dataclass(frozen=True)
    class Frozen:
        x: int = 0

    first = Frozen(1)
    reaktome.patch_obj(first, rec.hooks(SETATTR))
    second = Frozen(2)  # frozen dataclasses use object.__setattr__ in __init__
    assert dataclasses.replace(second, x=3).x == 3
    assert rec.take() == []


def test_delattr_hook_and_wrong_calls(rec):
    a = Plain()
    reaktome.patch_obj(a, rec.hooks(DELATTR))
    a.x = 1
    del a.x
    assert rec.take() == [("delattr", "x", 1, None)]
    with pytest.raises(TypeError):
        a.__setattr__("x")
    with pytest.raises(TypeError):
        a.__delattr__("x", 1)
    with pytest.raises(TypeError):
        setattr(a, 1, 2)
    assert rec.take() == []


def test_unpatch_and_none_removal(rec):
    a = Plain()
    reaktome.patch_obj(a, rec.hooks(SETATTR, DELATTR))
    reaktome.patch_obj(a, {SETATTR: None})
    assert set(reaktome.hooks(a)) == {DELATTR}
    a.x = 1
    del a.x
    assert rec.take() == [("delattr", "x", 1, None)]
    assert reaktome.unpatch(a) is True
    assert reaktome.unpatch(a) is False
    assert reaktome.hooks(a) is None
    a.x = 2
    del a.x
    assert rec.take() == []


def test_later_changes_to_base_classes_are_honoured(rec):
    class Base:
        pass

    class Cls(Base):
        pass

    patched, neighbour = Cls(), Cls()
    reaktome.patch_obj(patched, rec.hooks(SETATTR))
    for obj in (patched, neighbour):
        obj.x = 1

    def doubling(self, name, value):
        object.__setattr__(self, name, value * 2)

    Base.__setattr__ = doubling
    for obj in (patched, neighbour):
        obj.y = 2
    assert (patched.y, neighbour.y) == (4, 4)
    del Base.__setattr__
    patched.z = 3
    assert patched.z == 3
    assert rec.take() == [
        ("setattr", "x", None, 1),
        ("setattr", "y", None, 2),
        ("setattr", "z", None, 3),
    ]


def test_instrumented_class_can_die():
    import gc

    from reaktome import _reaktome

    gc.collect()
    before = _reaktome._table_stats()["classes"]

    def make_and_patch() -> None:
        cls = type("Temporary", (), {})
        obj = cls()
        reaktome.patch_obj(obj, {SETATTR: lambda *a: None})
        obj.v = 1
        assert _reaktome._table_stats()["classes"] == before + 1

    make_and_patch()
    gc.collect()
    assert _reaktome._table_stats()["classes"] == before


def test_repatch_after_class_reassignment(rec):
    class First:
        pass

    class Second:
        pass

    obj = First()
    reaktome.patch_obj(obj, rec.hooks(SETATTR))
    obj.__class__ = Second
    reaktome.patch_obj(obj, rec.hooks(SETATTR))
    obj.v = 1
    assert rec.take() == [("setattr", "__class__", None, Second), ("setattr", "v", None, 1)]
