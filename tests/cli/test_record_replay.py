"""Record -> change the world -> replay, for every class of input the install layer captures."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import pytest

from retracesoftware import exitcodes

from .conftest import Run, write


def record_and_replay(
    retrace: Run,
    tmp_path: Path,
    source: str,
    *,
    change=None,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    replay_env: dict[str, str] | None = None,
):
    script = write(tmp_path / "prog.py", textwrap.dedent(source))
    rec = retrace("record", "-o", "run.retrace", "--", str(script), *args, env=env)
    if change is not None:
        change()
    rep = retrace("replay", "run.retrace", env=replay_env)
    return rec, rep


def assert_same(rec, rep) -> None:
    assert "Traceback" not in rec.stderr or rec.returncode == 1, rec.stderr
    assert (rep.stdout, rep.stderr, rep.returncode) == (rec.stdout, rec.stderr, rec.returncode)


def test_clocks(retrace: Run, tmp_path: Path) -> None:
    dates = (
        "print(datetime.datetime.now(), datetime.datetime.now(datetime.timezone.utc))\n"
        "print(datetime.date.today(), datetime.datetime.today(), datetime.datetime.utcnow())\n"
    )
    rec, rep = record_and_replay(
        retrace,
        tmp_path,
        "import time, datetime\n"
        "print(time.time(), time.time_ns(), time.monotonic(), time.perf_counter())\n"
        "print(time.process_time(), time.thread_time_ns(), time.monotonic_ns())\n"
        "print(time.clock_gettime(time.CLOCK_MONOTONIC), time.clock_gettime_ns(0))\n"
        + dates
        + "print(time.strftime('%H:%M:%S'), time.localtime().tm_sec, time.ctime())\n"
        "t = time.monotonic(); time.sleep(0.2); print(round(time.monotonic() - t, 1))\n",
    )
    assert rec.returncode == 0, rec.stderr
    assert_same(rec, rep)


def test_datetime_is_captured_on_every_python(retrace: Run, tmp_path: Path) -> None:
    """The datetime classes are patched on 3.13 too (their dict is per interpreter there)."""
    import json

    write(tmp_path / "p.py", "import datetime\nprint(datetime.datetime.now())\n")
    assert retrace("record", "-o", "d.retrace", "--", "p.py").returncode == 0
    info = json.loads(retrace("inspect", "d.retrace", "--json").stdout)
    assert info["not_captured"] == []
    assert info["calls_by_function"].get("time.time", 0) >= 1


def test_sleep_is_a_recorded_call(retrace: Run, tmp_path: Path) -> None:
    import json

    rec, rep = record_and_replay(
        retrace, tmp_path, "import time\ntime.sleep(0.2)\nprint('slept')\n"
    )
    assert rec.stdout == "slept\n"
    assert_same(rec, rep)
    info = json.loads(retrace("inspect", "run.retrace", "--json").stdout)
    assert info["calls_by_function"]["time.sleep"] == 1  # replay answers it: no real sleep


def test_randomness(retrace: Run, tmp_path: Path) -> None:
    rec, rep = record_and_replay(
        retrace,
        tmp_path,
        """
        import os, random, uuid, secrets
        print(random.random(), random.randint(0, 10**9), random.choice("abcdef"))
        r = random.Random(); print(r.random(), r.getrandbits(64))
        print(random.Random(42).random())
        print(os.urandom(8).hex(), uuid.uuid4(), secrets.token_hex(8), uuid.uuid1())
        xs = list(range(10)); random.shuffle(xs); print(xs)
        print(random.SystemRandom().random())
        """,
    )
    assert rec.returncode == 0, rec.stderr
    assert_same(rec, rep)


def test_process_and_environment(retrace: Run, tmp_path: Path) -> None:
    rec, rep = record_and_replay(
        retrace,
        tmp_path,
        """
        import os, socket, sys
        import platform
        print(os.getpid(), os.getppid(), socket.gethostname(), os.getcwd(), os.cpu_count())
        print(os.uname().nodename, platform.uname().release, os.times().elapsed)
        print(os.environ.get("RT_COLOUR"), os.getenv("RT_ONLY_IN_RECORD"), sys.argv[1:])
        import threading
        worker = threading.Thread(target=lambda: print(threading.get_native_id()))
        worker.start(); worker.join()
        print(threading.get_native_id(), worker.native_id)
        """,
        args=("a", "b c"),
        env={"RT_COLOUR": "blue", "RT_ONLY_IN_RECORD": "yes"},
        replay_env={"RT_COLOUR": "red"},
    )
    assert "blue yes ['a', 'b c']" in rec.stdout
    assert_same(rec, rep)


def test_files_read_are_replayed_and_writes_not_repeated(retrace: Run, tmp_path: Path) -> None:
    data = write(tmp_path / "data.txt", "original\n")
    out = tmp_path / "out.txt"

    def change() -> None:
        data.write_text("changed\n", encoding="utf-8")
        out.unlink()

    rec, rep = record_and_replay(
        retrace,
        tmp_path,
        f"""
        import os
        with open({str(data)!r}) as f:
            print(f.read().strip())
        with open({str(out)!r}, "w") as f:
            f.write("written")
        print(sorted(os.listdir({str(tmp_path)!r})))
        """,
        change=change,
    )
    assert rec.stdout.startswith("original\n"), rec.stderr
    assert_same(rec, rep)
    assert not out.exists()  # replay did not write the file again


def test_threads(retrace: Run, tmp_path: Path) -> None:
    rec, rep = record_and_replay(
        retrace,
        tmp_path,
        """
        import threading, time, random
        out = {}
        lock = threading.Lock()
        def work(i):
            v = (time.time(), random.random())
            with lock:
                out[i] = v
        ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in ts: t.start()
        for t in ts: t.join()
        print(sorted(out.items()))
        """,
    )
    assert rec.returncode == 0, rec.stderr
    assert_same(rec, rep)


@pytest.mark.parametrize(
    "tail, status",
    [
        ("import sys; sys.exit(7)", 7),
        ("import sys; sys.exit('bye')", 1),
        ("raise ValueError('boom')", 1),
        ("print('fine')", 0),
    ],
)
def test_exit_status_and_traceback(retrace: Run, tmp_path: Path, tail: str, status: int) -> None:
    rec, rep = record_and_replay(retrace, tmp_path, f"import time\nprint(time.time())\n{tail}\n")
    assert rec.returncode == status
    assert_same(rec, rep)
    if "raise" in tail:
        assert rec.stderr.startswith("Traceback (most recent call last):\n")
        assert 'prog.py", line 3, in <module>' in rec.stderr
        assert "retracesoftware" not in rec.stderr
        assert rec.stderr.endswith("ValueError: boom\n")


@pytest.mark.parametrize(
    "program",
    [
        ("-c", "import time, sys; print(time.time(), sys.argv)", "x"),
        ("-m", "json.tool", "--help"),
    ],
)
def test_module_and_code_programs(retrace: Run, tmp_path: Path, program: tuple[str, ...]) -> None:
    rec = retrace("record", "-o", "run.retrace", "--", *program)
    rep = retrace("replay", "run.retrace")
    assert rec.returncode == 0, rec.stderr
    assert (rep.stdout, rep.stderr, rep.returncode) == (rec.stdout, rec.stderr, rec.returncode)


def test_seed_form_and_stdin_passthrough(retrace: Run, tmp_path: Path) -> None:
    script = write(tmp_path / "echo.py", "import sys\nprint(sys.stdin.read().upper())\n")
    rec = retrace("--recording", "seed.retrace", "--", str(script), input="hello")
    assert rec.returncode == 0, rec.stderr
    assert rec.stdout == "HELLO\n"
    rep = retrace("replay", "seed.retrace", input="other")
    assert (rep.stdout, rep.returncode) == ("HELLO\n", 0), rep.stderr


def test_recording_is_private(retrace: Run, tmp_path: Path) -> None:
    script = write(tmp_path / "p.py", "print(1)\n")
    (tmp_path / "old.retrace").write_bytes(b"x")
    os.chmod(tmp_path / "old.retrace", 0o644)
    for name in ("new.retrace", "old.retrace"):
        rec = retrace("record", "-o", name, "--", str(script))
        assert rec.returncode == 0, rec.stderr
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600


def test_secrets_are_redacted(retrace: Run, tmp_path: Path) -> None:
    secret = "s3cr3t-value-that-must-not-be-stored"
    env = {"API_TOKEN": secret, "DB_PASSWORD": secret, "MY_api_key": secret, "PLAIN": "visible"}
    rec, rep = record_and_replay(
        retrace,
        tmp_path,
        """
        import os
        for name in ("API_TOKEN", "DB_PASSWORD", "MY_api_key", "PLAIN"):
            print(name, os.environ[name] == "s3cr3t-value-that-must-not-be-stored",
                  os.environ[name] if name == "PLAIN" else "")
        print(os.environ["API_TOKEN"] if os.environ["API_TOKEN"].startswith("<") else "real")
        """,
        env=env,
    )
    assert rec.returncode == 0, rec.stderr
    assert secret.encode() not in (tmp_path / "run.retrace").read_bytes()
    assert b"visible" in (tmp_path / "run.retrace").read_bytes()
    assert "API_TOKEN True" in rec.stdout and "real" in rec.stdout
    # replay hands the program the placeholders, consistently
    assert "API_TOKEN False" in rep.stdout
    assert "<redacted by retrace>" in rep.stdout
    assert "PLAIN False visible" in rep.stdout


def test_redaction_is_configurable(retrace: Run, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    # a user file named like the shipped process.toml replaces it
    write(
        conf / "process.toml",
        '[environment]\nredact = ["*COLOUR*"]\nkeep = ["API_TOKEN"]\nplaceholder = "XX"\n',
    )
    script = write(tmp_path / "p.py", "import os\nprint(os.environ['RT_COLOUR'])\n")
    env = {"RT_COLOUR": "blue", "API_TOKEN": "tok-123"}
    rec = retrace("record", "--config", str(conf), "-o", "c.retrace", "--", str(script), env=env)
    assert rec.stdout == "blue\n", rec.stderr
    data = (tmp_path / "c.retrace").read_bytes()
    assert b"blue" not in data and b"tok-123" in data
    rep = retrace("replay", "--config", str(conf), "c.retrace")
    assert rep.returncode == exitcodes.OK, rep.stderr
    assert rep.stdout == "XX\n"
    # without the same configuration, replay refuses
    bad = retrace("replay", "c.retrace")
    assert bad.returncode == exitcodes.INCOMPATIBLE
    assert "different patch configuration" in bad.stderr


def test_replay_uses_recorded_cwd(retrace: Run, tmp_path: Path) -> None:
    sub = tmp_path / "work"
    sub.mkdir()
    script = write(sub / "p.py", "import time\nprint(open('f.txt').read(), time.time())\n")
    write(sub / "f.txt", "data")
    rec = retrace("record", "-o", str(tmp_path / "r.retrace"), "--", "p.py", cwd=sub)
    assert rec.returncode == 0, rec.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    rep = retrace("replay", str(tmp_path / "r.retrace"), cwd=elsewhere)
    assert (rep.stdout, rep.returncode) == (rec.stdout, 0), rep.stderr
    assert script.exists()


def test_inspect(retrace: Run, tmp_path: Path) -> None:
    import json

    script = write(tmp_path / "p.py", "import time\nfor _ in range(3): time.time()\n")
    assert retrace("record", "-o", "r.retrace", "--", str(script)).returncode == 0
    text = retrace("inspect", "r.retrace")
    assert text.returncode == 0, text.stderr
    assert "exit status: 0" in text.stdout and "time.time" in text.stdout
    out = retrace("inspect", "r.retrace", "--json")
    info = json.loads(out.stdout)
    assert info["calls_by_function"]["time.time"] == 3
    assert info["calls_by_module"]["time"] == 3
    assert info["exit_status"] == 0 and info["complete"] is True
    assert info["threads"] == 1
    assert info["events_by_kind"]["CALL"] == info["events_by_kind"]["RESULT"]
    assert info["size"] == (tmp_path / "r.retrace").stat().st_size
    assert info["program"] == [str(script)]


def test_stdin_is_recorded_and_not_read_on_replay(retrace: Run, tmp_path: Path) -> None:
    script = write(
        tmp_path / "ask.py",
        "import sys\n"
        "name = input('name? ')\n"
        "rest = sys.stdin.read()\n"
        "print('hello', name, repr(rest))\n"
        "for line in sys.stdin:\n"
        "    print('unreachable', line)\n",
    )
    rec = retrace("record", "-o", "in.retrace", "--", str(script), input="bob\nmore\n")
    assert rec.returncode == 0, rec.stderr
    assert rec.stdout == "name? hello bob 'more\\n'\n"
    rep = retrace("replay", "in.retrace", input="alice\nsomething else\n")
    assert (rep.stdout, rep.stderr, rep.returncode) == (rec.stdout, rec.stderr, 0)


def test_string_hash_order_replays(retrace: Run, tmp_path: Path) -> None:
    source = (
        "import os\n"
        "print(os.environ.get('PYTHONHASHSEED'), os.environ.get('_RETRACE_HASHSEED_SET'))\n"
        "print(list({'alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta'}))\n"
    )
    write(tmp_path / "p.py", source)
    rec = retrace("record", "-o", "h.retrace", "--", "p.py")
    assert rec.returncode == 0, rec.stderr
    assert rec.stdout.startswith("None None\n")  # the program sees its own environment
    for seed in ("1", "2", "3"):  # whatever the replaying shell's seed, the recorded order
        rep = retrace("replay", "h.retrace", env={"PYTHONHASHSEED": seed})
        assert (rep.stdout, rep.returncode) == (rec.stdout, 0), rep.stderr


def test_divergence_with_waiting_threads_prints_only_the_report(
    retrace: Run, tmp_path: Path
) -> None:
    """Worker threads blocked on a queue fail once replay diverges; their tracebacks would
    bury the report, so only the report is printed."""
    source = """
        import queue, threading, time
        q = queue.Queue()
        def worker():
            while (item := q.get()) is not None:
                print("got", item, time.time() > 0)
        workers = [threading.Thread(target=worker) for _ in range(2)]
        for t in workers: t.start()
        for i in range(4): q.put(i)
        time.sleep(0.05)
        for t in workers: q.put(None)
        for t in workers: t.join()
        """
    rec, _ = record_and_replay(retrace, tmp_path, source)
    assert rec.returncode == 0, rec.stderr
    write(
        tmp_path / "prog.py",
        textwrap.dedent(source).replace("time.sleep(0.05)", "time.monotonic()"),
    )
    rep = retrace("replay", "run.retrace")
    assert rep.returncode == exitcodes.DIVERGED
    assert rep.stderr.splitlines() == [
        line for line in rep.stderr.splitlines() if line.startswith("retrace: replay diverged")
    ]
    assert rep.stderr.count("retrace: replay diverged") == 1
