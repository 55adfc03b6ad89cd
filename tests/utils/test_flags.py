"""WithFlags / WithoutFlags: lift type flags and always restore them."""

from __future__ import annotations

import _socket

import pytest

from retracesoftware.utils import (
    TPFLAGS_BASETYPE,
    TPFLAGS_IMMUTABLETYPE,
    WithFlags,
    WithoutFlags,
    set_type_attribute,
)


def immutable(cls: type) -> bool:
    return bool(cls.__flags__ & TPFLAGS_IMMUTABLETYPE)


def test_without_flags_allows_patching_an_immutable_type():
    assert immutable(_socket.socket)
    with WithoutFlags(_socket.socket, TPFLAGS_IMMUTABLETYPE) as cls:
        assert cls is _socket.socket
        assert not immutable(_socket.socket)
        _socket.socket.retrace_test_attr = 1
        del _socket.socket.retrace_test_attr
    assert immutable(_socket.socket)
    with pytest.raises(TypeError):
        _socket.socket.retrace_test_attr = 1


def test_restored_on_exception_and_nesting():
    ctx = WithoutFlags(_socket.socket, TPFLAGS_IMMUTABLETYPE)
    with pytest.raises(KeyError), ctx:
        with ctx:
            assert ctx.active
        assert not immutable(_socket.socket)
        raise KeyError
    assert not ctx.active
    assert immutable(_socket.socket)


def test_restored_when_context_is_abandoned():
    ctx = WithoutFlags(_socket.socket, TPFLAGS_IMMUTABLETYPE)
    ctx.__enter__()
    assert not immutable(_socket.socket)
    del ctx  # never exited: deallocation restores
    assert immutable(_socket.socket)


def test_with_flags_sets_and_restores_only_managed_bits():
    class Plain:
        pass

    before = Plain.__flags__
    with WithFlags(Plain, TPFLAGS_IMMUTABLETYPE):
        assert immutable(Plain)
        assert Plain.__flags__ & TPFLAGS_BASETYPE
        with pytest.raises(TypeError):
            Plain.x = 1
    assert not immutable(Plain)
    assert (Plain.__flags__ ^ before) & TPFLAGS_IMMUTABLETYPE == 0
    Plain.x = 1


def test_set_type_attribute_sets_and_deletes():
    set_type_attribute(_socket.socket, "retrace_probe", 5)
    assert _socket.socket.retrace_probe == 5
    set_type_attribute(_socket.socket, "retrace_probe")
    assert not hasattr(_socket.socket, "retrace_probe")
    assert immutable(_socket.socket)


def test_bad_arguments():
    with pytest.raises(TypeError):
        WithFlags(42, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        WithoutFlags(int, "x")  # type: ignore[arg-type]
