"""Thread synchronisation: lock acquisitions and queue hand-offs replay in the recorded order."""

from __future__ import annotations

import textwrap
from pathlib import Path

from retracesoftware import exitcodes

from .conftest import Run, write

# Four threads take one lock 300 times each with the GIL switching every microsecond: the
# order of the appends depends on the interleaving (without the thread-sync adapter the
# replayed order differs from the recorded one).
INTERLEAVED = """
import sys, threading
sys.setswitchinterval(1e-6)
out = []
lock = threading.Lock()
go = threading.Event()
def worker(n):
    go.wait()
    for i in range(300):
        x = sum(range(100))
        with lock:
            out.append(n)
threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
for t in threads:
    t.start()
go.set()
for t in threads:
    t.join()
print("".join(map(str, out)))
"""

PRIMITIVES = """
import sys, threading, queue
from concurrent.futures import ThreadPoolExecutor, as_completed, wait
sys.setswitchinterval(1e-5)

# Shared lists are appended to under a lock: unsynchronised accesses race (see
# docs/capture-lifecycle.md); synchronised ones replay in the recorded order.
out_lock = threading.Lock()
q = queue.Queue()
got = []
def consumer(n):
    while (item := q.get()) is not None:
        with out_lock:
            got.append((n, item))
consumers = [threading.Thread(target=consumer, args=(n,)) for n in range(3)]
for c in consumers:
    c.start()
for i in range(60):
    q.put(i)
for c in consumers:
    q.put(None)
for c in consumers:
    c.join()
print("queue", got)

def job(n):
    return n, sum(range(3000 * (n % 5 + 1)))
with ThreadPoolExecutor(4) as ex:
    futures = [ex.submit(job, n) for n in range(16)]
    print("completed", [f.result()[0] for f in as_completed(futures)])
    done, pending = wait(futures)
    print("waited", len(done), len(pending))

cond = threading.Condition()
sem = threading.Semaphore(2)
rlock = threading.RLock()
ev = threading.Event()
log = []
def member(n):
    with sem:
        with rlock:
            with rlock:
                with cond:
                    log.append(n)
                    cond.notify_all()
    ev.wait()
    with cond:
        log.append(-n)
members = [threading.Thread(target=member, args=(n,)) for n in range(6)]
for m in members:
    m.start()
with cond:
    cond.wait_for(lambda: len(log) == 6)
ev.set()
for m in members:
    m.join()
print("log", log)

sq = queue.SimpleQueue()
taken = []
def taker(n):
    while (item := sq.get()) is not None:
        with out_lock:
            taken.append((n, item))
takers = [threading.Thread(target=taker, args=(n,)) for n in range(3)]
for t in takers:
    t.start()
for i in range(30):
    sq.put(i)
for t in takers:
    sq.put(None)
for t in takers:
    t.join()
print("simplequeue", taken, sq.empty(), sq.qsize())
print("nonblocking", threading.Lock().acquire(False), q.empty())
"""


def _record(retrace: Run, tmp_path: Path, source: str):
    script = write(tmp_path / "prog.py", textwrap.dedent(source))
    rec = retrace("record", "-o", "run.retrace", "--", str(script))
    assert rec.returncode == 0, rec.stderr
    return rec


def test_lock_order_replays_twenty_times(retrace: Run, tmp_path: Path) -> None:
    rec = _record(retrace, tmp_path, INTERLEAVED)
    assert len(rec.stdout.strip()) == 1200
    for _ in range(20):
        rep = retrace("replay", "run.retrace")
        assert (rep.stdout, rep.stderr, rep.returncode) == (rec.stdout, rec.stderr, 0)


# Loaded into the replay (and its re-executed interpreter) by PYTHONPATH: a thread sometimes
# loses the CPU between its turn and taking the real lock. Other threads must not overtake it.
SLOW_TAKER = """
import itertools
from retracesoftware.install import sync
_calls = itertools.count()
_wait_real = sync._Sync.wait_real
def wait_real(self, acquire, what):
    if next(_calls) % 3 == 1:
        for _ in range(100000):  # busy: the program switches threads every microsecond
            pass
    return _wait_real(self, acquire, what)
sync._Sync.wait_real = wait_real
"""


def test_lock_order_survives_a_preempted_acquirer(retrace: Run, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    write(site / "sitecustomize.py", SLOW_TAKER)
    env = {"PYTHONPATH": str(site)}  # in both runs: it imports threading early
    script = write(tmp_path / "prog.py", textwrap.dedent(INTERLEAVED))
    rec = retrace("record", "-o", "run.retrace", "--", str(script), env=env)
    assert rec.returncode == 0, rec.stderr
    for _ in range(3):
        rep = retrace("replay", "run.retrace", env=env)
        assert (rep.stdout, rep.stderr, rep.returncode) == (rec.stdout, rec.stderr, 0)


def test_primitives_and_executor_replay(retrace: Run, tmp_path: Path) -> None:
    rec = _record(retrace, tmp_path, PRIMITIVES)
    assert "completed" in rec.stdout and "simplequeue" in rec.stdout
    for _ in range(3):
        rep = retrace("replay", "run.retrace")
        assert (rep.stdout, rep.stderr, rep.returncode) == (rec.stdout, rec.stderr, 0)


def test_changed_locking_diverges_without_hanging(retrace: Run, tmp_path: Path) -> None:
    _record(retrace, tmp_path, INTERLEAVED)
    # The replayed program takes an extra lock at the start: reported, not a hang.
    write(tmp_path / "prog.py", "import threading\nthreading.Lock().acquire()\n" + INTERLEAVED)
    rep = retrace("replay", "run.retrace")
    assert rep.returncode == exitcodes.DIVERGED, rep.stderr
    assert "threading.Lock.acquire" in rep.stderr


JOIN_POLLING = """
import sys, threading
sys.setswitchinterval(1e-5)
def busy():
    s = 0
    for i in range(300000):
        s += i
t = threading.Thread(target=busy)
t.start()
t.join(0.001)
print("after join(timeout):", t.is_alive())
n = 0
while t.is_alive():
    n += 1
t.join()
print("polled", n, "times; alive", t.is_alive())
"""


def test_join_timeout_and_is_alive_replay(retrace: Run, tmp_path: Path) -> None:
    # How often the loop polls depends on timing; replay gives the recorded answers and waits
    # for the thread to end where the recording says it had ended.
    rec = _record(retrace, tmp_path, JOIN_POLLING)
    assert "alive False" in rec.stdout
    for _ in range(3):
        rep = retrace("replay", "run.retrace")
        assert (rep.stdout, rep.stderr, rep.returncode) == (rec.stdout, rec.stderr, 0)
