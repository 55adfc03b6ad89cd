"""Patching one instance changes nothing for any other instance, library or later import."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import reaktome

ADD, SET, DEL = "__reaktome_additem__", "__reaktome_setitem__", "__reaktome_delitem__"
DISCARD = "__reaktome_discarditem__"


def test_other_instances_fire_nothing(rec):
    mine_l, mine_d, mine_s = [], {}, set()
    reaktome.patch_list(mine_l, rec.hooks(ADD, SET, DEL))
    reaktome.patch_dict(mine_d, rec.hooks(ADD, SET, DEL))
    reaktome.patch_set(mine_s, rec.hooks(ADD, DISCARD))
    other_l, other_d, other_s = [1], {"a": 1}, {1}
    other_l.append(2)
    other_l[0] = 3
    del other_l[0]
    other_d["b"] = 2
    other_d.update(c=3)
    del other_d["a"]
    other_s.add(2)
    other_s.discard(1)
    assert (other_l, other_d, other_s) == ([2], {"b": 2, "c": 3}, {2})
    assert type(other_l) is list and type(other_d) is dict and type(other_s) is set
    assert rec.take() == []


def test_stdlib_unaffected(rec):
    mine_l, mine_d = [], {}
    reaktome.patch_list(mine_l, rec.hooks(ADD, SET, DEL))
    reaktome.patch_dict(mine_d, rec.hooks(ADD, SET, DEL))
    assert re.findall(r"(\w)(\d)", "a1 b2 c3") == [("a", "1"), ("b", "2"), ("c", "3")]
    assert re.sub(r"\s+", "-", "x  y\tz") == "x-y-z"
    doc = {"k": [1, 2, {"n": None}], "s": "t"}
    assert json.loads(json.dumps(doc)) == doc
    assert rec.take() == []
    # Patched instances also serialise exactly like plain ones.
    mine_l.extend([1, {"a": 2}])
    mine_d["x"] = mine_l
    assert json.dumps(mine_d) == json.dumps({"x": [1, {"a": 2}]})
    assert repr(mine_d) == "{'x': [1, {'a': 2}]}"


SCRIPT = textwrap.dedent(
    """
    import sys
    import reaktome

    calls = []
    hook = lambda *args: calls.append(args[1:])
    lst, d, s = [], {}, set()
    reaktome.patch_list(lst, {"__reaktome_additem__": hook, "__reaktome_setitem__": hook,
                              "__reaktome_delitem__": hook})
    reaktome.patch_dict(d, {"__reaktome_additem__": hook, "__reaktome_setitem__": hook,
                            "__reaktome_delitem__": hook})
    reaktome.patch_set(s, {"__reaktome_additem__": hook, "__reaktome_discarditem__": hook})

    # Modules imported after patching build and mutate plenty of lists, dicts and sets.
    import csv, decimal, email.message, fractions, io, json, re, statistics, string, textwrap
    assert "csv" in sys.modules
    out = io.StringIO()
    csv.writer(out).writerow(["a", 1])
    assert out.getvalue() == "a,1\\r\\n"
    assert json.loads(json.dumps({"a": [1, 2]})) == {"a": [1, 2]}
    assert re.compile(r"(?P<x>a+)").match("aaa").group("x") == "aaa"
    assert statistics.mean([1, 2, 3]) == 2
    assert fractions.Fraction(1, 3) * 3 == 1
    assert decimal.Decimal("1.10") + decimal.Decimal("2.20") == decimal.Decimal("3.30")
    msg = email.message.Message()
    msg["Subject"] = "hi"
    assert msg["Subject"] == "hi"
    assert calls == [], calls
    lst.append(1)
    d["k"] = 1
    s.add(1)
    assert len(calls) == 3, calls
    print("ok")
    """
)


def test_modules_imported_after_patching():
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
    assert result.stderr == ""


def test_type_of_plain_instances_unchanged():
    lst: list[int] = []
    reaktome.patch_list(lst, {ADD: print})
    assert type([]) is list
    assert "append" in vars(list)
    assert vars(list)["append"] is list.append
    reaktome.unpatch(lst)
    assert type(lst) is list


def test_import_loads_nothing_else():
    code = (
        "import sys; before = set(sys.modules); import reaktome; "
        "new = sorted(set(sys.modules) - before); import json; print(json.dumps(new))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    # __future__ is the compiler's (tiny) module for `from __future__ import annotations`.
    assert set(json.loads(out)) <= {"__future__", "reaktome", "reaktome._reaktome"}


def test_hook_alias_is_available():
    assert "Callable" in repr(reaktome.Hook)


def test_builtin_types_are_never_modified():
    code = textwrap.dedent(
        """
        import json
        def snapshot():
            return {t.__name__: sorted((k, id(v)) for k, v in vars(t).items())
                    for t in (list, dict, set, object)}
        before = snapshot()
        import reaktome
        class C:
            pass
        hook = lambda *a: None
        lst, d, s, c = [], {}, set(), C()
        reaktome.patch_list(lst, {"__reaktome_additem__": hook})
        reaktome.patch_dict(d, {"__reaktome_additem__": hook})
        reaktome.patch_set(s, {"__reaktome_additem__": hook})
        reaktome.patch_obj(c, {"__reaktome_setattr__": hook})
        lst.append(1); d[1] = 1; s.add(1); c.x = 1
        print(json.dumps(snapshot() == before))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert json.loads(out) is True
