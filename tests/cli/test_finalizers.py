"""Finalizers and weakref callbacks run outside the sandbox: GC timing cannot desynchronise
replay."""

from __future__ import annotations

import textwrap
from pathlib import Path

from .conftest import Run, write

# Objects in reference cycles are freed by the cyclic collector, whose timing follows
# allocation counts; recording and replay allocate differently (a replayed file read makes no
# real file object), so the collector runs at other points on replay.  The finalizers read
# the clock: recorded inside the sandbox, those calls would land between the program's own
# calls at different places and replay would diverge.
PROGRAM = """
import gc, time, weakref
gc.set_threshold(50, 5, 5)
finalized = []
class Node:
    def __init__(self, n):
        self.n = n
        self.me = self
    def __del__(self):
        finalized.append(time.time())
def gone(ref):
    finalized.append(time.time())
class Plain:
    pass
keep = []
total = 0.0
for i in range(300):
    Node(i)
    p = Plain()
    p.me = p
    keep.append(weakref.ref(p, gone))
    weakref.finalize(p, time.time)
    total += time.time()
    if i % 7 == 0:
        with open(__file__) as f:
            f.read(5)
del p
gc.collect()
print("clock read:", total > 0, "finalizers ran:", len(finalized))
print("weakref.ref still a type:", isinstance(keep[0], weakref.ref), weakref.ref.__name__)
class MyRef(weakref.ref):
    pass
r = MyRef(Plain())
print("subclass:", type(r).__name__, r() is None)
"""


def test_gc_finalizers_do_not_desynchronise_replay(retrace: Run, tmp_path: Path) -> None:
    script = write(tmp_path / "prog.py", textwrap.dedent(PROGRAM))
    rec = retrace("record", "-o", "run.retrace", "--", str(script))
    assert rec.returncode == 0, rec.stderr
    assert "finalizers ran: 600" in rec.stdout
    assert "still a type: True ref" in rec.stdout and "subclass: MyRef True" in rec.stdout
    for _ in range(2):
        rep = retrace("replay", "run.retrace")
        assert (rep.stdout, rep.stderr, rep.returncode) == (rec.stdout, rec.stderr, 0)


def test_without_the_adapter_replay_diverges(retrace: Run, tmp_path: Path) -> None:
    """The same program with the finalizers adapter removed: proves the test above tests it."""
    script = write(tmp_path / "prog.py", textwrap.dedent(PROGRAM))
    conf = tmp_path / "conf"
    conf.mkdir()
    write(conf / "lifecycle.toml", '[modules.atexit]\nadapters = ["atexit"]\n')
    rec = retrace("record", "--config", str(conf), "-o", "run.retrace", "--", str(script))
    assert rec.returncode == 0, rec.stderr
    rep = retrace("replay", "--config", str(conf), "run.retrace")
    assert rep.returncode == 201, rep.stdout
