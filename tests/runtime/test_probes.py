"""Probe detection and policy (retracesoftware.utils.probes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import types
from pathlib import Path

import pytest

from retracesoftware.utils import probes

ALL = frozenset(probes.FEATURES)


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv("RETRACE_PROBES", raising=False)
    monkeypatch.setattr(probes, "_cached", None)
    yield
    probes._cached = None


def fake_retrace(abi=1, flags=None):
    """An in-memory stand-in for the builtin of a patched interpreter."""
    module = types.ModuleType("_retrace")
    module.ABI_VERSION = abi
    module.FEATURE_FLAGS = sum(probes.FEATURES.values()) if flags is None else flags
    module.thread_id = lambda: 4242
    module.identity_hash = lambda obj: 77
    return module


def install(monkeypatch, module):
    monkeypatch.setattr(probes, "_import_retrace", lambda: module)


def test_policy_values(monkeypatch):
    assert probes.policy({}) is probes.ProbePolicy.AUTO
    assert probes.policy({"RETRACE_PROBES": " Require "}) is probes.ProbePolicy.REQUIRE
    assert probes.policy({"RETRACE_PROBES": "off"}) is probes.ProbePolicy.OFF
    assert probes.policy({"RETRACE_PROBES": ""}) is probes.ProbePolicy.AUTO
    with pytest.raises(ValueError, match="RETRACE_PROBES='sometimes' is not one of"):
        probes.policy({"RETRACE_PROBES": "sometimes"})


def test_vanilla_auto_falls_back_and_says_why(monkeypatch):
    install(monkeypatch, None)
    result = probes.status()
    assert not result.present and not result.active
    assert result.missing == ALL
    assert "no _retrace module" in result.reason
    assert probes.thread_id() == threading.get_ident()
    obj = object()
    assert probes.identity_hash(obj) == object.__hash__(obj)
    assert "unavailable" in probes.describe() and "thread_ids" in probes.describe()


def test_vanilla_require_fails_early(monkeypatch):
    install(monkeypatch, None)
    monkeypatch.setenv("RETRACE_PROBES", "require")
    with pytest.raises(probes.ProbesUnavailableError, match="RETRACE_PROBES=require"):
        probes.status()
    with pytest.raises(probes.ProbesUnavailableError):
        probes.thread_id()


def test_patched_auto_uses_everything(monkeypatch):
    install(monkeypatch, fake_retrace())
    result = probes.status()
    assert result.present and result.available == ALL and not result.missing
    assert result.abi_version == 1
    assert probes.thread_id() == 4242
    assert probes.identity_hash(object()) == 77
    assert probes.describe().startswith("native probes: all in use")


def test_off_ignores_a_patched_interpreter(monkeypatch):
    install(monkeypatch, fake_retrace())
    monkeypatch.setenv("RETRACE_PROBES", "off")
    result = probes.status()
    assert result.present and not result.active and result.reason == "RETRACE_PROBES=off"
    assert probes.thread_id() == threading.get_ident()


def test_unknown_abi_is_unavailable(monkeypatch):
    install(monkeypatch, fake_retrace(abi=99))
    result = probes.status()
    assert result.present and not result.active and "ABI 99" in result.reason
    monkeypatch.setenv("RETRACE_PROBES", "require")
    with pytest.raises(probes.ProbesUnavailableError, match="ABI 99"):
        probes.status()


def test_partial_features(monkeypatch):
    flags = probes.FEATURES["thread_ids"] | probes.FEATURES["coordinates"]
    install(monkeypatch, fake_retrace(flags=flags))
    result = probes.status()
    assert result.available == {"thread_ids", "coordinates"}
    assert "identity_hash" in result.missing and "identity_hash" in result.reason
    assert probes.thread_id() == 4242
    obj = object()
    assert probes.identity_hash(obj) == object.__hash__(obj)
    monkeypatch.setenv("RETRACE_PROBES", "require")
    with pytest.raises(probes.ProbesUnavailableError, match="call_at"):
        probes.status()


def test_policy_change_is_noticed(monkeypatch):
    install(monkeypatch, fake_retrace())
    assert probes.status().active
    monkeypatch.setenv("RETRACE_PROBES", "off")
    assert not probes.status().active


def test_bad_policy_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("RETRACE_PROBES", "maybe")
    with pytest.raises(ValueError, match="not one of: auto, require, off"):
        probes.status()


def test_this_interpreter_imports_retracesoftware(monkeypatch):
    # On the interpreter running the tests (vanilla unless patched) the real
    # detection must work and agree with the presence of _retrace.
    result = probes.status()
    assert result.present == ("_retrace" in sys.builtin_module_names)


def test_real_patched_interpreter(patched_python: str):
    python = patched_python
    src = Path(probes.__file__).resolve().parent
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('probes', {str(src / 'probes.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['probes'] = m\n"
        "spec.loader.exec_module(m)\n"
        "import _thread\n"
        "s = m.status()\n"
        "o = object()\n"
        "print(json.dumps({'available': sorted(s.available), 'tid': m.thread_id(),\n"
        "  'ident': _thread.get_ident(), 'h': m.identity_hash(o), 'hash': hash(o)}))\n"
    )
    runs = []
    for _ in range(2):
        proc = subprocess.run(
            [python, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "RETRACE_PROBES": "require"},
        )
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout))
    first = runs[0]
    assert first["available"] == sorted(probes.FEATURES)
    assert first["tid"] == first["ident"] and first["h"] == first["hash"]
    assert runs[0] == runs[1], "thread ids / identity hashes differ between runs"
