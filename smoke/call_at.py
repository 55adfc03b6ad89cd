"""call_at: record a coordinate in one run, hit it exactly in a second run;
overshoot, past targets, disarming and callback errors."""

import json

import retrace
from _common import check, run_child

CHILD = r"""
import json, sys, _thread, retrace
mode, target, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
state = {"i": None, "hits": [], "overs": []}

def work(n):
    marks = []
    for i in range(n):
        state["i"] = i
        marks.append(retrace.coordinates())
        i * i  # a few instructions that are not eval-breaker points
    return marks

def hit():
    state["hits"].append(state["i"])

def over():
    state["overs"].append(state["i"])

def arm(words):
    retrace.call_at(_thread.get_ident(), words, hit, over)

def noop(words):
    pass

setup = arm if mode != "record" else noop
setup(tuple(json.loads(target)) if mode != "record" else None)
marks = work(20)
print(json.dumps({"mark": marks[k], "hits": state["hits"], "overs": state["overs"]}))
"""


def child(mode, target, k):
    code = "import sys; sys.argv[1:] = %r\n" % [mode, json.dumps(target), str(k)] + CHILD
    return json.loads(run_child(code))


K = 7
recorded = child("record", None, K)["mark"]
again = child("record", None, K)["mark"]
check(recorded == again, f"coordinates differ between identical runs: {recorded} {again}")

replay = child("hit", recorded, K)
check(replay["hits"] == [K], f"exact hit expected at iteration {K}, got {replay}")
check(replay["overs"] == [], f"overshoot fired on an exact target: {replay}")
check(replay["mark"] == recorded, "arming call_at changed the coordinates of the run")

between = list(recorded)
between[-1] += 1  # just after the call: no check point there, so it is passed
passed = child("overshoot", between, K)
check(passed["hits"] == [] and passed["overs"] == [K], f"overshoot expected at {K}: {passed}")

# In-process: a past target raises ValueError; call_at(None) disarms; errors propagate.
import _thread  # noqa: E402

me = _thread.get_ident()
try:
    retrace.call_at(me, retrace.coordinates(), lambda: None)
except ValueError:
    pass
else:
    check(False, "a target in the past did not raise ValueError")

fired = []


def loop(n):
    for _ in range(n):
        pass


c = retrace.coordinates()
retrace.call_at(me, (*c[:-1], c[-1] + 10_000), lambda: fired.append(1))
retrace.call_at(None)
import _retrace  # noqa: E402

check(not _retrace.call_at_armed(), "call_at(None) did not disarm")
loop(1000)
check(fired == [], "a disarmed target fired")


class Boom(Exception):
    pass


def boom():
    raise Boom


def arm_then_loop():
    c = retrace.coordinates()
    retrace.call_at(me, (*c[:-1], c[-1] + 500), boom, boom)
    for _ in range(1000):
        pass


try:
    arm_then_loop()
except Boom:
    pass
else:
    check(False, "an exception from the overshoot callback did not propagate")
for bad in ((me, "x", print), (me, (1,), print), (me, (), 5)):
    try:
        retrace.call_at(*bad)
    except (TypeError, ValueError):
        pass
    else:
        check(False, f"call_at{bad} accepted bad arguments")
print("ok")
