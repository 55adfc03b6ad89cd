"""Thread start/yield/resume callbacks under 4 busy threads."""

import _thread
import sys
import threading

import retrace
from _common import check

events = []  # (event, thread id, coordinates seen inside the callback)


def on_start():
    events.append(("start", _thread.get_ident(), retrace.coordinates()))


def on_yield():
    events.append(("yield", _thread.get_ident(), None))


def on_resume():
    events.append(("resume", _thread.get_ident(), None))


def busy(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


sys.setswitchinterval(1e-5)
retrace.callbacks.thread_start = on_start
retrace.callbacks.thread_yield = on_yield
retrace.callbacks.thread_resume = on_resume
check(retrace.callbacks.thread_yield is on_yield, "callback getter does not round-trip")
threads = [threading.Thread(target=busy, args=(300_000,)) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
retrace.callbacks.thread_start = None
retrace.callbacks.thread_yield = None
retrace.callbacks.thread_resume = None
check(retrace.callbacks.thread_start is None, "clearing a callback failed")

by_thread = {}
for event, tid, seen in events:
    by_thread.setdefault(tid, []).append((event, seen))
workers = {t.ident for t in threads}
check(workers <= by_thread.keys(), "a worker reported no events")
for tid in workers:
    seq = [e for e, _ in by_thread[tid]]
    check(seq[0] == "start" and seq.count("start") == 1, f"thread {tid}: start events {seq[:5]}")
    check(by_thread[tid][0][1] == (), f"coordinates inside thread_start: {by_thread[tid][0][1]}")
    rest = seq[1:]
    check(rest[0::2] == ["yield"] * len(rest[0::2]), f"thread {tid}: yields out of order")
    check(rest[1::2] == ["resume"] * len(rest[1::2]), f"thread {tid}: resumes out of order")
    check(len(rest) % 2 == 0, f"thread {tid}: a yield without its resume")
total_yields = sum(e == "yield" for e, _, _ in events)
check(total_yields >= 4, f"only {total_yields} yields under 4 busy threads")
main_seq = [e for e, _ in by_thread.get(_thread.get_ident(), [])]
check("start" not in main_seq, "the main thread got a start event")
after = len(events)
busy(1000)
check(len(events) == after, "callbacks still fire after being cleared")
print("ok")
