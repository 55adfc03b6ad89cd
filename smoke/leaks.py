"""Reference/allocation leak check of the _retrace entry points."""

import _thread
import contextlib
import gc
import sys
import threading

import retrace
from _common import check


def noop():
    return None


excluded = retrace.exclude(noop)
included = retrace.include(noop)
me = _thread.get_ident()


def exercise():
    retrace.coordinates()
    retrace.coordinates(None, 2)
    retrace.coordinates(me)
    retrace.thread_delta()
    retrace.hash()
    retrace.identity_hash(object())
    excluded()
    included()
    retrace.exclude(noop)()
    retrace.callbacks.thread_yield = noop
    retrace.callbacks.thread_yield = None
    c = retrace.coordinates()
    retrace.call_at(me, (*c[:-1], c[-1] + 1000), noop)
    retrace.call_at(None)
    with contextlib.suppress(LookupError):
        retrace.coordinates(12345)
    with contextlib.suppress(ValueError):
        retrace.call_at(me, retrace.coordinates(), noop)
    h = retrace.ThreadHandoff()
    h.close()
    with contextlib.suppress(RuntimeError):
        h(me)


def blocks():
    gc.collect()
    return sys.getallocatedblocks()


for _ in range(200):
    exercise()
before = blocks()
for _ in range(5000):
    exercise()
grown = blocks() - before
check(grown < 100, f"{grown} memory blocks leaked over 5000 rounds")

# Threads: ids, start callbacks and handoffs do not leak either.
retrace.callbacks.thread_start = noop
for _ in range(20):
    t = threading.Thread(target=noop)
    t.start()
    t.join()
before = blocks()
for _ in range(200):
    t = threading.Thread(target=noop)
    t.start()
    t.join()
retrace.callbacks.thread_start = None
grown = blocks() - before
check(grown < 100, f"{grown} memory blocks leaked over 200 threads")
print("ok")
