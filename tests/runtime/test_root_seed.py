"""Engine integration: recordings carry the thread-id root seed; replay runs with it."""

from __future__ import annotations

import json
import os
import subprocess
import types

import pytest

from retracesoftware import hashseed
from retracesoftware.utils import probes


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv("RETRACE_PROBES", raising=False)
    monkeypatch.delenv(probes.ROOT_SEED_ENV, raising=False)
    monkeypatch.setattr(probes, "_cached", None)
    yield
    probes._cached = None


def fake_retrace(seed):
    module = types.ModuleType("_retrace")
    module.ABI_VERSION = 1
    module.FEATURE_FLAGS = sum(probes.FEATURES.values())
    module.root_seed = lambda: seed
    return module


def test_root_seed_is_what_the_interpreter_read(monkeypatch):
    monkeypatch.setattr(probes, "_import_retrace", lambda: fake_retrace("s1"))
    monkeypatch.setenv(probes.ROOT_SEED_ENV, "changed later")
    assert probes.root_seed() == "s1"


def test_root_seed_without_probes_is_none(monkeypatch):
    monkeypatch.setattr(probes, "_import_retrace", lambda: None)
    monkeypatch.setenv(probes.ROOT_SEED_ENV, "s1")
    assert probes.root_seed() is None


class Execed(Exception):
    pass


def capture_exec(monkeypatch):
    # (with a fake _retrace: the interpreter must look patched to hashseed too)
    monkeypatch.setattr(hashseed, "_may_have_probes", lambda: True)
    calls = []

    def fake_execve(path, args, env):
        calls.append(env)
        raise Execed

    monkeypatch.setattr(os, "execve", fake_execve)
    return calls


def test_replay_reexecutes_with_the_recorded_root_seed(monkeypatch):
    monkeypatch.setattr(probes, "_import_retrace", lambda: fake_retrace(None))
    monkeypatch.setenv("PYTHONHASHSEED", "7")
    calls = capture_exec(monkeypatch)
    with pytest.raises(Execed):
        hashseed.for_replay(["replay", "x.retrace"], 7, ("recorded-seed",))
    assert calls[0][probes.ROOT_SEED_ENV] == "recorded-seed"
    assert calls[0]["PYTHONHASHSEED"] == "7"


def test_replay_removes_a_root_seed_the_recording_did_not_have(monkeypatch):
    monkeypatch.setattr(probes, "_import_retrace", lambda: fake_retrace("mine"))
    monkeypatch.setenv("PYTHONHASHSEED", "7")
    monkeypatch.setenv(probes.ROOT_SEED_ENV, "mine")
    calls = capture_exec(monkeypatch)
    with pytest.raises(Execed):
        hashseed.for_replay(["replay", "x.retrace"], 7, (None,))
    assert probes.ROOT_SEED_ENV not in calls[0]


def test_replay_with_matching_seeds_does_not_reexecute(monkeypatch):
    monkeypatch.setattr(probes, "_import_retrace", lambda: fake_retrace("s"))
    monkeypatch.setenv("PYTHONHASHSEED", "7")
    calls = capture_exec(monkeypatch)
    hashseed.for_replay(["replay", "x.retrace"], 7, ("s",))
    assert calls == []


def test_vanilla_replay_ignores_the_root_seed(monkeypatch):
    monkeypatch.setattr(probes, "_import_retrace", lambda: None)
    monkeypatch.setenv("PYTHONHASHSEED", "7")
    calls = capture_exec(monkeypatch)
    hashseed.for_replay(["replay", "x.retrace"], 7, ("recorded-seed",))
    assert calls == []


def test_reexecuted_process_never_loops(monkeypatch):
    monkeypatch.setattr(probes, "_import_retrace", lambda: fake_retrace("other"))
    monkeypatch.setenv("PYTHONHASHSEED", "7")
    monkeypatch.setenv("_RETRACE_HASHSEED_SET", "1")
    calls = capture_exec(monkeypatch)
    hashseed.for_replay(["replay", "x.retrace"], 7, ("recorded-seed",))
    assert calls == []


PROGRAM = """
import json, os, threading, _thread, _retrace
os.environ.pop("RETRACE_ROOT_SEED", None)   # what Retrace does after re-executing
seen = {}
def worker(i):
    seen[i] = (_thread.get_ident(), hash(object()))
ts = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(json.dumps({"seed": _retrace.root_seed(), "main": _thread.get_ident(),
                  "main_id": _retrace.main_thread_id(), "objs": [hash(object()) for _ in range(3)],
                  "threads": [seen[i] for i in range(3)]}))
"""


def run_patched(python, seed):
    env = {k: v for k, v in os.environ.items() if k != probes.ROOT_SEED_ENV}
    if seed is not None:
        env[probes.ROOT_SEED_ENV] = seed
    proc = subprocess.run(
        [python, "-c", PROGRAM], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_patched_thread_ids_and_hashes_follow_the_root_seed(patched_python):
    python = patched_python
    a1, a2 = run_patched(python, "alpha"), run_patched(python, "alpha")
    b = run_patched(python, "beta")
    default = run_patched(python, None)
    assert a1 == a2, "same root seed, different thread ids or identity hashes"
    assert a1["seed"] == "alpha" and default["seed"] is None
    # Read once: removing the variable afterwards leaves the main id alone.
    assert a1["main"] == a1["main_id"]
    assert b["main"] != a1["main"] and b["objs"] != a1["objs"]
    assert b["threads"] != a1["threads"] and default["main"] != a1["main"]


def test_application_reenters_visible_space_only_with_probes(monkeypatch):
    def run():
        return 42

    monkeypatch.setattr(probes, "_import_retrace", lambda: None)
    assert probes.application(run) is run
    module = fake_retrace(None)
    module.include = lambda fn: ("included", fn)
    monkeypatch.setattr(probes, "_import_retrace", lambda: module)
    probes._cached = None
    assert probes.application(run) == ("included", run)
    monkeypatch.setenv("RETRACE_PROBES", "off")
    assert probes.application(run) is run


def test_vanilla_interpreter_checks_the_root_seed_without_probes(monkeypatch):
    # No _retrace builtin: nothing to match, nothing imported to find that out.
    monkeypatch.setattr(hashseed, "_may_have_probes", lambda: False)
    monkeypatch.setattr(probes, "_import_retrace", lambda: pytest.fail("probes were asked"))
    monkeypatch.setenv("PYTHONHASHSEED", "7")
    calls = []
    monkeypatch.setattr(os, "execve", lambda *a: calls.append(a))
    hashseed.for_replay(["replay", "x.retrace"], 7, ("recorded-seed",))
    assert calls == []
