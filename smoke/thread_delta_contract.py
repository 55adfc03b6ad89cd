"""thread_delta() replayed onto a materialised stack always equals coordinates()."""

import retrace
from _common import check

stack = []
# Transparent helper: both probes see the caller's instruction, not the helper.
snap = retrace.exclude(lambda: (retrace.thread_delta(), retrace.coordinates()))
checked = 0


def observe():
    global checked
    delta, full = snap()
    common = delta[0]
    check(isinstance(common, int) and 0 <= common <= len(stack), f"bad common {common}")
    check(common % 2 == 0, "common prefix splits a pair")
    del stack[common:]
    stack.extend(delta[1:])
    check(tuple(stack) == full, f"delta stream diverged:\n  {tuple(stack)}\n  {full}")
    checked += 1


first, _ = snap()
check(first[0] == 0 or stack == [], "first delta must start from an empty prefix")
stack.extend(first[1:])


def leaf(n):
    observe()
    if n:
        leaf(n - 1)
    observe()


def gen(n):
    for i in range(n):
        observe()
        yield i
        observe()


def deep_consumer(g):
    return [x for x in g]


def thrower():
    try:
        observe()
        raise ValueError
    except ValueError:
        observe()


for round_ in range(20):
    observe()
    leaf(round_ % 5)
    g = gen(3)
    next(g)
    deep_consumer(g)  # the generator resumes at another depth
    thrower()
    list(map(lambda _: observe(), range(3)))
    observe()

check(checked > 300, f"too few observations ({checked})")
print("ok")
