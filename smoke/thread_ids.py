"""Deterministic thread ids: stable across runs, seeded by RETRACE_ROOT_SEED."""

import json
import sys
import threading

from _common import check, run_child

CHILD = r"""
import _thread, json, sys, threading, retrace
out = {"main": _thread.get_ident()}
def work(name, depth):
    out[name] = _thread.get_ident()
    assert threading.current_thread().ident == _thread.get_ident()
    assert _thread.get_ident() in sys._current_frames()
    if depth:
        t = threading.Thread(target=work, args=(name + ".child", depth - 1))
        t.start(); t.join()
threads = [threading.Thread(target=work, args=(f"t{i}", i % 2)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert threading.main_thread() is threading.current_thread()
assert threading.main_thread().ident == out["main"] == retrace.main_thread_id()
print(json.dumps(out, sort_keys=True))
"""


def ids(seed):
    return json.loads(run_child(CHILD, {"RETRACE_ROOT_SEED": seed}))


default_a = ids(None)
default_b = ids(None)
check(default_a == default_b, f"ids differ between two runs:\n{default_a}\n{default_b}")
check(ids("retrace") == default_a, "unset RETRACE_ROOT_SEED is not the seed 'retrace'")
other = ids("another seed")
check(other["main"] != default_a["main"], "RETRACE_ROOT_SEED did not change the main id")
check(set(other.values()).isdisjoint(default_a.values()), "seeds share thread ids")
check(len(set(default_a.values())) == len(default_a), f"duplicate ids: {default_a}")
check(all(0 < v < 2**64 for v in default_a.values()), "ids out of range")

# In this process too: threading agrees with _thread.
import _thread  # noqa: E402

seen = {}
t = threading.Thread(target=lambda: seen.setdefault("id", _thread.get_ident()))
t.start()
t.join()
check(t.ident == seen["id"], "Thread.ident is not the deterministic id")
check(sys._current_frames().keys() >= {_thread.get_ident()}, "_current_frames keys")
print("ok")
