"""Gates: per-thread state and tag, scopes that always restore."""

from __future__ import annotations

import gc
import threading

import pytest

from retracesoftware.utils import MAX_GATES, Gate, GateState


def test_default_state_is_off_with_no_tag():
    gate = Gate()
    assert gate.get() == GateState.OFF
    assert gate.tag == -1


def test_set_returns_previous_and_validates():
    gate = Gate()
    assert gate.set(GateState.INSIDE) == GateState.OFF
    assert gate.set(GateState.DISABLED) == GateState.INSIDE
    assert gate.get() == GateState.DISABLED
    with pytest.raises(ValueError, match="invalid gate state"):
        gate.set(7)
    with pytest.raises(TypeError):
        gate.set("inside")
    gate.set(GateState.OFF)


def test_scope_restores_state_and_tag_even_on_error():
    gate = Gate()
    gate.tag = 3
    with pytest.raises(RuntimeError), gate.scope(GateState.INSIDE, 9):
        assert gate.get() == GateState.INSIDE and gate.tag == 9
        with gate.scope(GateState.OUTSIDE):
            assert gate.get() == GateState.OUTSIDE and gate.tag == 9
        assert gate.get() == GateState.INSIDE
        raise RuntimeError
    assert gate.get() == GateState.OFF and gate.tag == 3
    with pytest.raises(ValueError):
        gate.scope(12)


def test_scope_is_not_reentrant():
    gate = Gate()
    scope = gate.scope(GateState.INSIDE)
    with scope, pytest.raises(RuntimeError, match="re-entrant"), scope:
        pass


def test_state_is_per_thread():
    gate = Gate()
    gate.set(GateState.INSIDE)
    gate.tag = 1
    seen = {}

    def worker():
        seen["initial"] = (gate.get(), gate.tag)
        gate.set(GateState.DISABLED)
        gate.tag = 2
        seen["after"] = (gate.get(), gate.tag)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == {"initial": (GateState.OFF, -1), "after": (GateState.DISABLED, 2)}
    assert (gate.get(), gate.tag) == (GateState.INSIDE, 1)
    gate.set(GateState.OFF)


def test_gates_are_independent_and_slots_are_reused():
    a, b = Gate(), Gate()
    a.set(GateState.INSIDE)
    assert b.get() == GateState.OFF
    del a, b
    gc.collect()
    gates = []
    with pytest.raises(
        RuntimeError, match=f"too many live Gate objects \\(the limit is {MAX_GATES}"
    ):
        while True:
            gates.append(Gate())
    assert gates and all(g.get() == GateState.OFF for g in gates)
    gates[0].set(GateState.INSIDE)
    count = len(gates)
    del gates
    gc.collect()
    again = [Gate() for _ in range(count)]  # every slot was released
    assert all(g.get() == GateState.OFF for g in again)  # a reused slot starts fresh
