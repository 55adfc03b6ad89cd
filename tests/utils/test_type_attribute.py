"""set_type_attribute reaches the dict attribute lookups use, on every supported Python.

Python 3.13 keeps the dicts of extension modules' static types (``datetime.datetime``...) per
interpreter: a plain ``setattr`` with the immutable flag lifted wrote to an unused ``tp_dict``
and was silently lost there.
"""

from __future__ import annotations

import datetime
import gc
import sys
import tracemalloc

import pytest

from retracesoftware.utils import TPFLAGS_IMMUTABLETYPE, set_type_attribute


@pytest.mark.parametrize("cls", [datetime.datetime, datetime.date, int, str])
def test_set_then_delete_is_seen_by_lookups(cls: type) -> None:
    marker = object()
    set_type_attribute(cls, "retrace_probe", marker)
    try:
        assert cls.__dict__.get("retrace_probe") is marker
        assert cls.retrace_probe is marker  # type: ignore[attr-defined]
    finally:
        set_type_attribute(cls, "retrace_probe")
    assert "retrace_probe" not in cls.__dict__
    assert not hasattr(cls, "retrace_probe")
    assert cls.__flags__ & TPFLAGS_IMMUTABLETYPE


def test_replacing_datetime_now_and_restoring_it() -> None:
    original = datetime.datetime.__dict__["now"]
    fixed = datetime.datetime(2001, 2, 3, 4, 5, 6)
    set_type_attribute(datetime.datetime, "now", classmethod(lambda cls, tz=None: fixed))
    try:
        assert datetime.datetime.now() is fixed
        # a subclass finds the new attribute too (its method cache was invalidated)
        assert type("Sub", (datetime.datetime,), {}).now() is fixed
    finally:
        set_type_attribute(datetime.datetime, "now", original)
    assert datetime.datetime.now() is not fixed
    assert datetime.datetime.__dict__["now"] is original


def test_errors_are_clear() -> None:
    with pytest.raises(AttributeError, match="retrace_absent"):
        set_type_attribute(datetime.datetime, "retrace_absent")
    with pytest.raises(TypeError):
        set_type_attribute(42, "x", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        set_type_attribute(int, 3, 1)  # type: ignore[arg-type]


def test_no_reference_leak() -> None:
    value = object()

    def cycle() -> None:
        set_type_attribute(datetime.datetime, "retrace_probe", value)
        set_type_attribute(datetime.datetime, "retrace_probe")

    for _ in range(20):
        cycle()
    gc.collect()
    before = sys.getrefcount(value)
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(2000):
            cycle()
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sys.getrefcount(value) == before
    assert end - start < 32 * 1024
