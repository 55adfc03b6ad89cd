"""Random operation sequences: a patched container behaves exactly like a plain one.

Each sequence runs on a plain and on a patched instance; results, raised errors, contents,
iteration order and size in memory must match, and the hooks must tell a consistent story:
per operation, additions minus removals equal the change in length, and at hook time every
reported addition or assignment is visible in the instance.
"""

from __future__ import annotations

import sys
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import reaktome

ADD, SET, DEL = "__reaktome_additem__", "__reaktome_setitem__", "__reaktome_delitem__"
DISCARD = "__reaktome_discarditem__"

values = st.integers(-3, 12)
small_lists = st.lists(values, max_size=6)
index = st.integers(-8, 8)


def outcome(fn: Any) -> tuple[str, Any]:
    try:
        return ("ok", fn())
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))


class Ledger:
    """Hooks that count events and check what each one claims against the instance."""

    def __init__(self) -> None:
        self.added = self.removed = 0
        self.problems: list[str] = []

    def hooks(self, kind: str) -> dict[str, Any]:
        def add(instance: Any, key: Any, old: Any, new: Any) -> None:
            self.added += 1
            self.check(kind, "add", instance, key, new)

        def change(instance: Any, key: Any, old: Any, new: Any) -> None:
            self.check(kind, "set", instance, key, new)

        def remove(instance: Any, key: Any, old: Any, new: Any) -> None:
            self.removed += 1
            if kind in ("dict", "set") and key in instance:
                self.problems.append(f"{kind}: removed {key!r} still present")

        if kind == "set":
            return {ADD: add, DISCARD: remove}
        return {ADD: add, SET: change, DEL: remove}

    def check(self, kind: str, what: str, instance: Any, key: Any, new: Any) -> None:
        if kind == "set":
            ok = key in instance
        elif kind == "dict":
            ok = key in instance and instance[key] is new
        else:
            ok = 0 <= key < len(instance) and instance[key] is new
        if not ok:
            self.problems.append(f"{kind}: {what} {key!r}={new!r} not visible in {instance!r}")


LIST_OPS = st.one_of(
    st.tuples(st.just("append"), values),
    st.tuples(st.just("insert"), index, values),
    st.tuples(st.just("extend"), small_lists),
    st.tuples(st.just("extend_gen"), small_lists),
    st.tuples(st.just("iadd"), small_lists),
    st.tuples(st.just("imul"), st.integers(-1, 3)),
    st.tuples(st.just("setitem"), index, values),
    st.tuples(st.just("delitem"), index),
    st.tuples(st.just("setslice"), index, index, st.sampled_from([None, 1, 2, -1]), small_lists),
    st.tuples(st.just("delslice"), index, index, st.sampled_from([None, 1, 2, -1])),
    st.tuples(st.just("pop"), st.one_of(st.none(), index)),
    st.tuples(st.just("remove"), values),
    st.tuples(st.just("clear")),
    st.tuples(st.just("sort"), st.booleans()),
    st.tuples(st.just("reverse")),
    st.tuples(st.just("self")),
    st.tuples(st.just("init"), small_lists),
)


def apply_list(lst: list[int], op: tuple[Any, ...]) -> tuple[str, Any]:
    name, *args = op

    def run() -> Any:
        if name == "extend_gen":
            return lst.extend(x for x in args[0])
        if name == "iadd":
            target = lst
            target += args[0]
            return None
        if name == "imul":
            target = lst
            target *= args[0]
            return None
        if name == "setitem":
            lst[args[0]] = args[1]
            return None
        if name == "delitem":
            del lst[args[0]]
            return None
        if name == "setslice":
            lst[args[0] : args[1] : args[2]] = args[3]
            return None
        if name == "delslice":
            del lst[args[0] : args[1] : args[2]]
            return None
        if name == "pop":
            return lst.pop() if args[0] is None else lst.pop(args[0])
        if name == "sort":
            return lst.sort(reverse=args[0])
        if name == "self":
            return lst.extend(lst)
        if name == "init":
            return lst.__init__(args[0])
        return getattr(lst, name)(*args)

    return outcome(run)


DICT_KEYS = st.integers(0, 6)
DICT_OPS = st.one_of(
    st.tuples(st.just("setitem"), DICT_KEYS, values),
    st.tuples(st.just("delitem"), DICT_KEYS),
    st.tuples(st.just("update"), st.dictionaries(DICT_KEYS, values, max_size=5)),
    st.tuples(st.just("update_pairs"), st.lists(st.tuples(DICT_KEYS, values), max_size=5)),
    st.tuples(st.just("update_kw"), st.dictionaries(st.sampled_from("abc"), values, max_size=3)),
    st.tuples(st.just("ior"), st.dictionaries(DICT_KEYS, values, max_size=5)),
    st.tuples(st.just("setdefault"), DICT_KEYS, values),
    st.tuples(st.just("pop"), DICT_KEYS),
    st.tuples(st.just("popitem")),
    st.tuples(st.just("clear")),
    st.tuples(st.just("self")),
    st.tuples(st.just("init"), st.dictionaries(DICT_KEYS, values, max_size=5)),
)


def apply_dict(d: dict[Any, int], op: tuple[Any, ...]) -> tuple[str, Any]:
    name, *args = op

    def run() -> Any:
        if name == "setitem":
            d[args[0]] = args[1]
            return None
        if name == "delitem":
            del d[args[0]]
            return None
        if name == "update_pairs":
            return d.update(iter(args[0]))
        if name == "update_kw":
            return d.update(**args[0])
        if name == "ior":
            target = d
            target |= args[0]
            return None
        if name == "self":
            return d.update(d)
        if name == "init":
            return d.__init__(args[0])
        return getattr(d, name)(*args)

    return outcome(run)


SET_ITEMS = st.lists(st.integers(0, 40), max_size=12)
SET_OPS = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 40)),
    st.tuples(st.just("discard"), st.integers(0, 40)),
    st.tuples(st.just("remove"), st.integers(0, 40)),
    st.tuples(st.just("pop")),
    st.tuples(st.just("clear")),
    st.tuples(st.just("update"), SET_ITEMS, st.booleans()),
    st.tuples(st.just("difference_update"), SET_ITEMS, st.booleans()),
    st.tuples(st.just("intersection_update"), SET_ITEMS, st.booleans()),
    st.tuples(st.just("symmetric_difference_update"), SET_ITEMS, st.booleans()),
    st.tuples(st.sampled_from(["ior", "isub", "iand", "ixor"]), SET_ITEMS),
    st.tuples(st.sampled_from(["ior_self", "isub_self", "iand_self", "ixor_self"])),
    st.tuples(st.just("init"), SET_ITEMS),
)


def apply_set(s: set[int], op: tuple[Any, ...]) -> tuple[str, Any]:
    name, *args = op

    def run() -> Any:
        if name in ("ior", "isub", "iand", "ixor"):
            getattr(s, f"__{name}__")(set(args[0]))
            return None
        if name.endswith("_self"):
            getattr(s, f"__{name[:-5]}__")(s)
            return None
        if name == "init":
            return s.__init__(args[0])
        if len(args) == 2:  # a bulk method: from a set or from a one-shot iterator
            return getattr(s, name)(set(args[0]) if args[1] else iter(args[0]))
        return getattr(s, name)(*args)

    return outcome(run)


def run_model(kind: str, start: Any, ops: list[Any], apply: Any, patch: Any) -> None:
    plain, patched = type(start)(start), type(start)(start)
    ledger = Ledger()
    patch(patched, ledger.hooks(kind))
    for op in ops:
        size = len(patched)
        added, removed = ledger.added, ledger.removed
        assert apply(patched, op) == apply(plain, op), op
        assert patched == plain, op
        assert list(patched) == list(plain), op  # iteration order too
        assert sys.getsizeof(patched) == sys.getsizeof(plain), op
        assert (ledger.added - added) - (ledger.removed - removed) == len(patched) - size, op
        assert ledger.problems == [], op


@settings(max_examples=150, deadline=None)
@given(small_lists, st.lists(LIST_OPS, max_size=12))
def test_list_model(start, ops):
    run_model("list", start, ops, apply_list, reaktome.patch_list)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(DICT_KEYS, values, max_size=5), st.lists(DICT_OPS, max_size=12))
def test_dict_model(start, ops):
    run_model("dict", start, ops, apply_dict, reaktome.patch_dict)


@settings(max_examples=150, deadline=None)
@given(SET_ITEMS, st.lists(SET_OPS, max_size=12))
def test_set_model(start, ops):
    run_model("set", set(start), ops, apply_set, reaktome.patch_set)
