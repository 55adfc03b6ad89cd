"""Fixtures that run the functional test-suite against both backends."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

BACKENDS = {
    "native": "retracesoftware.functional._functional",
    "pure": "retracesoftware.functional._pure",
}


@pytest.fixture(params=sorted(BACKENDS))
def fn(request: pytest.FixtureRequest) -> ModuleType:
    """The combinators of one backend (``native`` or ``pure``)."""
    return importlib.import_module(BACKENDS[request.param])


@pytest.fixture
def native() -> ModuleType:
    return importlib.import_module(BACKENDS["native"])


@pytest.fixture
def pure() -> ModuleType:
    return importlib.import_module(BACKENDS["pure"])
