"""Patching is in place, idempotent and fully reversible."""

from __future__ import annotations

import _random
import os
import random
import time

import pytest

from retracesoftware.proxy import EngineError, MemoryWriter, System
from retracesoftware.utils import Crossing

VALID_VERSION_TAG = 1 << 19  # a method-cache bit CPython clears whenever a type changes


def snapshot() -> dict:
    return {
        "time.time": time.time,
        "os.getenv": os.getenv,
        "random.random": random.random,
        "Random": dict(vars(_random.Random)),
        "flags": _random.Random.__flags__ & ~VALID_VERSION_TAG,
    }


def test_uninstall_restores_everything(world):
    before = snapshot()
    world_before = dict(vars(world))
    s = System()
    s.patch_function(time, "time")
    s.patch_function(os, "getenv")
    s.patch_function(random, "random")
    s.patch_type(_random.Random)
    s.patch_function(world, "fetch")
    assert isinstance(time.time, Crossing)
    assert isinstance(vars(_random.Random)["random"], Crossing)
    s.uninstall()
    assert snapshot() == before
    assert dict(vars(world)) == world_before
    s.uninstall()  # idempotent
    assert snapshot() == before


def test_patching_twice_is_idempotent():
    with System() as s:
        first = s.patch_function(time, "time")
        assert s.patch_function(time, "time") is first
        names = s.patch_type(_random.Random)
        s.patch_type(_random.Random)
        assert vars(_random.Random)["random"].target is not vars(_random.Random)["random"]
        assert sorted(names) == sorted(set(names))
    assert not isinstance(time.time, Crossing)


def test_immutable_c_type_is_patched_and_stays_immutable():
    import _socket

    flags = _socket.socket.__flags__ & ~VALID_VERSION_TAG
    with System() as s:
        s.patch_type(_socket.socket, ["gettimeout"])
        assert _socket.socket.__flags__ & ~VALID_VERSION_TAG == flags
        with pytest.raises(TypeError):
            _socket.socket.gettimeout = None
    assert _socket.socket.__flags__ & ~VALID_VERSION_TAG == flags
    assert not isinstance(vars(_socket.socket)["gettimeout"], Crossing)


def test_socket_is_replayed_without_opening_a_socket():
    import _socket
    import socket

    def prog():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(2.5)
            return sock.gettimeout(), sock.fileno() >= 0
        finally:
            sock.close()

    with System() as s:
        s.patch_type(_socket.socket)
        writer = MemoryWriter()
        recorded = s.record(writer, prog)
        assert recorded == (2.5, True)
        opened: list = []
        real_init = vars(_socket.socket)["__init__"].target
        assert real_init is not None
        assert s.replay(writer.reader(), prog) == recorded
        assert opened == []
        keys = [e[2] for e in writer.events if e[0] == 1]
        assert keys[0] == "_socket.socket.__init__" and "_socket.socket.close" in keys


def test_patch_python_class_methods(world):
    class Clock:
        def now(self) -> float:
            return time.perf_counter()

    with System() as s:
        s.patch_type(Clock)
        clock = Clock()
        writer = MemoryWriter()
        recorded = s.record(writer, lambda: [clock.now(), clock.now()])
        assert s.replay(writer.reader(), lambda: [clock.now(), clock.now()]) == recorded
    assert "now" in vars(Clock) and not isinstance(vars(Clock)["now"], Crossing)


def test_inherited_attribute_patch_is_removed_on_uninstall():
    class Base:
        def hello(self) -> str:
            return "hi"

    class Child(Base):
        pass

    with System() as s:
        s.patch_function(Child, "hello")
        assert "hello" in vars(Child)
    assert "hello" not in vars(Child)
    assert Child().hello() == "hi"


def test_bad_patch_requests_fail_clearly():
    with System() as s:
        with pytest.raises(EngineError, match="not callable"):
            s.patch_function(os, "sep")
        with pytest.raises(EngineError, match="not a method"):
            s.patch_type(_random.Random, ["no_such_method"])
        with pytest.raises(EngineError, match="expects a class"):
            s.patch_type(42)  # type: ignore[arg-type]
        with pytest.raises(AttributeError):
            s.patch_function(os, "no_such_function")


def test_record_and_replay_validate_their_arguments():
    with System() as s:
        with pytest.raises(EngineError, match="needs a Writer"):
            s.record(None, lambda: None)  # type: ignore[arg-type]
        with pytest.raises(EngineError, match="needs a Reader"):
            s.replay(MemoryWriter(), lambda: None)  # type: ignore[arg-type]
        with pytest.raises(EngineError, match="callable"):
            s.record(MemoryWriter(), 42)  # type: ignore[arg-type]
        assert s.mode.name == "OFF"


def test_cannot_patch_or_uninstall_while_running():
    with System() as s:
        s.patch_function(time, "time")

        def prog():
            with pytest.raises(EngineError, match="running"):
                s.uninstall()
            with pytest.raises(EngineError, match="running"):
                s.record(MemoryWriter(), lambda: None)

        s.record(MemoryWriter(), prog)


@pytest.mark.parametrize(
    ("package", "allowed"),
    [
        ("retracesoftware.utils", {"functional", "utils", "_version"}),
        ("retracesoftware.proxy", {"functional", "utils", "proxy", "_version"}),
    ],
)
def test_layering(package: str, allowed: set[str]) -> None:
    """utils needs only functional; proxy never imports stream (nor install)."""
    import ast
    import subprocess
    import sys

    code = (
        f"import {package}, sys; "
        "print(sorted({m.split('.')[1] for m in sys.modules "
        "if m.startswith('retracesoftware.')}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(ast.literal_eval(out))
    assert loaded <= allowed, loaded - allowed


def test_patched_callables_pickle_by_reference_and_keep_metadata(world):
    import inspect
    import pickle

    with System() as s:
        s.patch_function(time, "time")
        s.patch_type(_random.Random, ["random"])
        fetch = s.patch_function(world, "fetch")
        assert pickle.loads(pickle.dumps(time.time)) is time.time
        assert pickle.loads(pickle.dumps(_random.Random.random)) is _random.Random.random
        assert (time.time.__name__, time.time.__module__) == ("time", "time")
        assert fetch.__wrapped__.__name__ == "fetch"
        assert list(inspect.signature(fetch).parameters) == ["url"]


def test_socketpair_conversation_replays_without_any_socket():
    """Real sockets on record; on replay no file descriptor is opened and every method and
    C-level attribute (family, timeout, ...) answers from the recording."""
    import _socket
    import socket

    def prog():
        a, b = socket.socketpair()
        with a, b:
            a.sendall(b"hello over a real socket")
            data = b.recv(100)
            b.settimeout(0.05)
            try:
                b.recv(10)
            except TimeoutError as exc:
                timeout = repr(exc)
            return data, timeout, repr(a).split(",")[:3], b.gettimeout(), a.family

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0

    before = dict(vars(_socket.socket))
    with System() as s:
        s.patch_type(_socket.socket)
        s.patch_function(_socket, "socketpair")
        writer = MemoryWriter()
        recorded = s.record(writer, prog)
        assert recorded[0] == b"hello over a real socket"
        fds = open_fds()
        assert s.replay(writer.reader(), prog) == recorded
        assert open_fds() == fds
    assert dict(vars(_socket.socket)) == before
