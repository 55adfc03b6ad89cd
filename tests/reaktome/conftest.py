"""Shared helpers for the reaktome tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

ADD = "__reaktome_additem__"
SET = "__reaktome_setitem__"
DEL = "__reaktome_delitem__"
DISCARD = "__reaktome_discarditem__"
SETATTR = "__reaktome_setattr__"
DELATTR = "__reaktome_delattr__"

SHORT = {
    ADD: "add",
    SET: "set",
    DEL: "del",
    DISCARD: "discard",
    SETATTR: "setattr",
    DELATTR: "delattr",
}


class Recorder:
    """Builds hook dicts whose hooks append ``(kind, key, old, new)`` to ``events``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any, Any, Any]] = []
        self.instances: list[int] = []

    def hook(self, name: str) -> Any:
        kind = SHORT[name]

        def record(instance: Any, key: Any, old: Any, new: Any) -> None:
            self.instances.append(id(instance))
            self.events.append((kind, key, old, new))

        return record

    def hooks(self, *names: str) -> dict[str, Any]:
        return {name: self.hook(name) for name in names}

    def take(self) -> list[tuple[str, Any, Any, Any]]:
        events, self.events = self.events, []
        self.instances = []
        return events


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def unraisable() -> Iterator[list[Any]]:
    """Collect what reaches sys.unraisablehook during the test."""
    seen: list[Any] = []
    old = sys.unraisablehook
    sys.unraisablehook = lambda info: seen.append((info.exc_type, info.exc_value, info.object))
    try:
        yield seen
    finally:
        sys.unraisablehook = old
