"""Callbacks, exceptions both ways, nested crossings and external objects."""

from __future__ import annotations

import time

import pytest

from retracesoftware.proxy import ExternalProxy, MemoryWriter, RecordedException


def test_callbacks_are_reexecuted_in_order_on_replay(system, world):
    seen: list = []

    def square(x: int) -> int:
        seen.append(x)
        return x * x

    prog = lambda: world.apply(square, [1, 2, 3])  # noqa: E731
    writer = MemoryWriter()
    assert system.record(writer, prog) == [1, 4, 9]
    assert seen == [1, 2, 3]
    seen.clear()
    assert system.replay(writer.reader(), prog) == [1, 4, 9]
    assert seen == [1, 2, 3], "callbacks run again on replay, in the same order"
    assert world.calls == 1


def test_nested_crossing_inside_callback(system, world):
    def stamp(x: int) -> tuple:
        return (x, time.time(), world.fetch(str(x)))

    prog = lambda: world.apply(stamp, [1, 2])  # noqa: E731
    writer = MemoryWriter()
    recorded = system.record(writer, prog)
    calls = world.calls
    world.answer = "other"
    assert system.replay(writer.reader(), prog) == recorded
    assert world.calls == calls


def test_external_exception_is_replayed(system, world):
    def prog() -> str:
        try:
            world.fail("disk on fire")
        except world.FakeIOError as exc:
            return f"{type(exc).__name__}:{exc.errno}:{exc.strerror}"
        return "no error"

    writer = MemoryWriter()
    recorded = system.record(writer, prog)
    assert recorded == "FakeIOError:5:disk on fire"
    assert system.replay(writer.reader(), prog) == recorded
    assert world.calls == 1


def test_builtin_exception_escapes_replay(system, world):
    prog = lambda: world.fetch_many(None)  # noqa: E731  (TypeError inside the world)
    writer = MemoryWriter()
    with pytest.raises(TypeError):
        system.record(writer, prog)
    with pytest.raises(TypeError):
        system.replay(writer.reader(), prog)


def test_unknown_exception_type_becomes_recorded_exception(system, world):
    import sys

    prog = lambda: world.fail("x")  # noqa: E731
    writer = MemoryWriter()
    with pytest.raises(OSError):
        system.record(writer, prog)
    module = sys.modules.pop("fakeworld")
    try:
        with pytest.raises(RecordedException, match="FakeIOError"):
            system.replay(writer.reader(), prog)
    finally:
        sys.modules["fakeworld"] = module


def test_callback_exception_propagates_through_external_code(system, world):
    class Boom(Exception):
        pass

    def bad(x: int) -> int:
        raise Boom(x)

    def prog():
        try:
            world.apply(bad, [7])
        except Boom as exc:
            return exc
        return None

    writer = MemoryWriter()
    rec_exc = system.record(writer, prog)
    assert isinstance(rec_exc, Boom)
    rep_exc = system.replay(writer.reader(), prog)
    assert isinstance(rep_exc, Boom) and rep_exc.args == (7,)
    assert rep_exc is not rec_exc


def test_callback_exception_swallowed_by_external_code(system, world):
    def picky(x: int) -> None:
        if x > 1:
            raise ValueError(f"too big {x}")

    prog = lambda: [world.apply_swallow(picky, 1), world.apply_swallow(picky, 5)]  # noqa: E731
    writer = MemoryWriter()
    recorded = system.record(writer, prog)
    assert recorded == ["no error", "swallowed too big 5"]
    assert system.replay(writer.reader(), prog) == recorded


def test_external_objects_are_proxied_and_replayed_without_the_object(system, world):
    def prog():
        conn = world.connect("example.org")
        assert isinstance(conn, ExternalProxy)
        n = conn.send(b"hello")
        again = world.identity(conn)
        return n, conn.recv(), len(conn), conn.host, again is conn

    writer = MemoryWriter()
    recorded = system.record(writer, prog)
    assert recorded == (5, b"reply from example.org", 1, "example.org", True)
    calls = world.calls
    assert system.replay(writer.reader(), prog) == recorded
    assert world.calls == calls


def test_internal_object_lent_out_comes_back_as_itself(system, world):
    class Token:
        pass

    def prog():
        token = Token()
        return world.identity(token) is token

    writer = MemoryWriter()
    assert system.record(writer, prog) is True
    assert system.replay(writer.reader(), prog) is True


def test_os_error_keeps_its_file_names_on_replay(system):
    import os

    missing = "/nonexistent/retrace-test-file"
    system.patch_function(os, "stat")

    def prog() -> str:
        try:
            os.stat(missing)
        except OSError as exc:
            return f"{type(exc).__name__}|{exc.errno}|{exc.filename}|{exc}"
        return "no error"

    writer = MemoryWriter()
    recorded = system.record(writer, prog)
    assert recorded.startswith(f"FileNotFoundError|2|{missing}|")
    assert system.replay(writer.reader(), prog) == recorded
