"""Recordings are untrusted: bad ones fail with one clear exception, never execute anything."""

from __future__ import annotations

import contextlib
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retracesoftware.proxy import (
    EngineError,
    ErrorValue,
    Handle,
    Loan,
    MemoryReader,
    RecordedException,
    ReplayDivergence,
)
from retracesoftware.utils import fingerprint

EMPTY = fingerprint(())[1]


def replay(system, events, prog):
    return system.replay(MemoryReader(events), prog)


def test_unsupported_value_type(system):
    events = [(1, 0, "time.time", "", EMPTY), (2, 0, object()), (7, 0)]
    with pytest.raises(EngineError, match="unsupported type object"):
        replay(system, events, time.time)


def test_unknown_handle(system):
    events = [(1, 0, "time.time", "", EMPTY), (2, 0, Handle(99)), (7, 0)]
    with pytest.raises(ReplayDivergence, match="external object #99"):
        replay(system, events, time.time)


def test_new_handle_of_unpatched_type_is_refused_without_importing(system):
    events = [(1, 0, "time.time", "", EMPTY), (2, 0, Handle(0, "type:os.system", True)), (7, 0)]
    with pytest.raises(EngineError, match="not patched"):
        replay(system, events, time.time)
    events[1] = (2, 0, Handle(0, "pickle:os.system", True))
    with pytest.raises(EngineError, match="unknown kind"):
        replay(system, events, time.time)


def test_error_naming_a_non_exception_is_not_called(system, monkeypatch):
    called = []
    monkeypatch.setattr(os, "retrace_trap", lambda *a: called.append(a), raising=False)
    events = [(1, 0, "time.time", "", EMPTY), (3, 0, ErrorValue("os.retrace_trap", ("x",))), (7, 0)]
    with pytest.raises(RecordedException, match=r"os\.retrace_trap"):
        replay(system, events, time.time)
    assert called == []


def test_malformed_error_and_loan(system):
    events = [(1, 0, "time.time", "", EMPTY), (3, 0, "not an error"), (7, 0)]
    with pytest.raises(EngineError, match="malformed error"):
        replay(system, events, time.time)
    events = [(1, 0, "time.time", "", EMPTY), (2, 0, Loan(99)), (7, 0)]
    with pytest.raises(ReplayDivergence, match="lent no such object"):
        replay(system, events, time.time)


def test_call_after_call_is_malformed(system):
    events = [(1, 0, "time.time", "", EMPTY), (1, 0, "time.time", "", EMPTY), (7, 0)]
    with pytest.raises(ReplayDivergence) as info:
        replay(system, events, time.time)
    assert info.value.kind == "malformed"


def test_callback_to_nothing_lent(system):
    events = [(1, 0, "time.time", "", EMPTY), (4, 0, 5, (), {}), (7, 0)]
    with pytest.raises(ReplayDivergence, match="lent no such callable"):
        replay(system, events, time.time)


def test_callback_with_malformed_arguments(system, world):
    key = "fakeworld.apply"

    def prog():
        return world.apply(lambda x: x, [1])

    from retracesoftware.proxy import MemoryWriter

    writer = MemoryWriter()
    system.record(writer, prog)
    events = list(writer.events)
    cb = next(i for i, e in enumerate(events) if e[0] == 4)
    events[cb] = (4, 0, events[cb][2], "not a tuple", {})
    assert events[0][2] == key
    with pytest.raises(EngineError, match="malformed callback"):
        replay(system, events, prog)


event = st.one_of(
    st.tuples(
        st.just(1),
        st.integers(0, 2),
        st.sampled_from(["time.time", "os.getenv", "x"]),
        st.sampled_from(["", "s", "i"]),
        st.integers(0, 2**32),
    ),
    st.tuples(st.just(2), st.integers(0, 2), st.one_of(st.none(), st.floats(), st.text())),
    st.tuples(st.just(3), st.integers(0, 2), st.just(ErrorValue("builtins.OSError", (2, "x")))),
    st.tuples(st.just(4), st.integers(0, 2), st.integers(0, 3), st.just(()), st.just({})),
    st.tuples(st.sampled_from([5, 7]), st.integers(0, 2)),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(event, max_size=8))
def test_random_recordings_fail_cleanly(system, events):
    system.timeout = 0.05

    def prog():
        return [time.time(), os.getenv("HOME"), time.time()]

    with contextlib.suppress(ReplayDivergence, EngineError, RecordedException, OSError):
        replay(system, events, prog)
    assert system.mode.name == "OFF"
