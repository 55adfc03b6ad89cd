"""Fixtures for the engine tests: a fake external world and a System patched over it."""

from __future__ import annotations

import _random
import os
import random
import sys
import time
import types
from collections.abc import Iterator

import pytest

from retracesoftware.proxy import System


class Connection:
    """An external object of an unpatched type (replayed through a proxy)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def recv(self) -> bytes:
        return b"reply from " + self.host.encode()

    def __len__(self) -> int:
        return len(self.sent)


def make_world() -> types.ModuleType:
    """A module standing for the outside world; ``calls`` counts real invocations."""
    world = types.ModuleType("fakeworld")
    world.calls = 0
    world.answer = "first world"
    FakeIOError = type("FakeIOError", (OSError,), {"__module__": "fakeworld"})

    def fetch(url: str) -> str:
        world.calls += 1
        return f"{world.answer}: {url}"

    def fetch_many(urls: list) -> dict:
        world.calls += 1
        return {u: [world.answer, len(u)] for u in urls}

    def fail(message: str) -> None:
        world.calls += 1
        raise FakeIOError(5, message)

    def apply(fn, items: list) -> list:
        world.calls += 1
        return [fn(i) for i in items]

    def apply_swallow(fn, item: int) -> str:
        world.calls += 1
        try:
            fn(item)
        except ValueError as exc:
            return f"swallowed {exc}"
        return "no error"

    def connect(host: str) -> Connection:
        world.calls += 1
        return Connection(host)

    def identity(obj: object) -> object:
        world.calls += 1
        return obj

    for fn in (fetch, fetch_many, fail, apply, apply_swallow, connect, identity):
        fn.__module__ = "fakeworld"
        setattr(world, fn.__name__, fn)
    world.FakeIOError = FakeIOError
    return world


@pytest.fixture
def world() -> Iterator[types.ModuleType]:
    module = make_world()
    sys.modules["fakeworld"] = module
    try:
        yield module
    finally:
        sys.modules.pop("fakeworld", None)


@pytest.fixture
def system(world: types.ModuleType) -> Iterator[System]:
    """A System patching clocks, random numbers, the environment and the fake world."""
    with System(timeout=5.0) as s:
        for name in ("time", "monotonic", "perf_counter_ns"):
            s.patch_function(time, name)
        s.patch_function(os, "getenv")
        s.patch_function(random, "random")
        s.patch_type(_random.Random)
        for name in (
            "fetch",
            "fetch_many",
            "fail",
            "apply",
            "apply_swallow",
            "connect",
            "identity",
        ):
            s.patch_function(world, name)
        yield s
