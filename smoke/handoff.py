"""ThreadHandoff: strict ping-pong between two threads, durable permits, close()."""

import _thread
import threading

import retrace
from _common import check

ROUNDS = 200
handoff = retrace.ThreadHandoff()
log = []
ready = threading.Event()
ids = {"main": _thread.get_ident()}
worker_result = []


def worker():
    ids["worker"] = _thread.get_ident()
    ready.set()
    try:
        handoff(0)  # park until main hands over (0 is never a thread id)
        for i in range(ROUNDS):
            log.append(("w", i))
            handoff(ids["main"])
    except RuntimeError as exc:
        worker_result.append(str(exc))


t = threading.Thread(target=worker, daemon=True)
t.start()
ready.wait()
for i in range(ROUNDS):
    log.append(("m", i))
    handoff(ids["worker"])
expected = [x for i in range(ROUNDS) for x in (("m", i), ("w", i))]
# The worker is parked waiting for a permit; close() must wake it.
handoff.close()
check(log == expected, f"not a strict ping-pong: {log[:6]} ... ({len(log)} entries)")
t.join(10)
check(not t.is_alive(), "close() did not wake the parked thread")
check(len(worker_result) == 1 and "closed" in worker_result[0], f"worker got {worker_result}")
check(handoff.closed, "closed attribute not set")
try:
    handoff(ids["main"])
except RuntimeError:
    pass
else:
    check(False, "a call after close() did not raise RuntimeError")

# Durable permits: a permit given before the target sleeps is not lost.
h2 = retrace.ThreadHandoff()
done = []


def late():
    h2(ids["main"])  # grant main (already asleep or not) and park
    done.append("late")


t2 = threading.Thread(target=late, daemon=True)
t2.start()
h2(t2.ident if t2.ident else 0)  # grant the late thread, then park until it grants us
t2.join(0.5)
h2.close()
t2.join(10)
check(not t2.is_alive(), "durable permit test hung")
for bad in ("x", -1, 2**64):
    try:
        retrace.ThreadHandoff()(bad)
    except (TypeError, ValueError):
        pass
    else:
        check(False, f"ThreadHandoff accepted {bad!r}")
print("ok")
