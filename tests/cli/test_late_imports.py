"""Configured modules the program imports while it runs: patched then, recorded the same way
whether or not they were loaded before the program started."""

from __future__ import annotations

from pathlib import Path

from .conftest import Run, write
from .test_record_replay import assert_same, record_and_replay

# A library the user configures: its `ask()` reaches the outside world (here: a file whose
# contents change between the runs); its body reads the clock and a file when imported.
LIBRARY = """\
import os, time
LOADED_AT = time.time()
with open(os.environ["ORACLE"]) as fh:
    FIRST = fh.read()
def ask():
    with open(os.environ["ORACLE"]) as fh:
        return fh.read()
"""
CONFIG = '[modules.oracle]\nfunctions = ["ask"]\n'

PROGRAM = """\
import random, sys
print("before", random.random())
import oracle
print("answer", oracle.ask(), type(oracle.ask).__name__)
import socket, uuid
print("uuid", uuid.uuid4(), socket.gethostname() != "")
import ssl, http.client, logging, tempfile  # bodies that touch patched functions and locks
print("ssl", ssl.Purpose.SERVER_AUTH.oid, tempfile.gettempdir() != "")
import threading
lock = threading.Lock()  # numbered after any lock those bodies made
with lock:
    print("locked", random.random())
"""


def _setup(tmp_path: Path, answer: str) -> dict[str, str]:
    lib = tmp_path / "lib"
    lib.mkdir(exist_ok=True)
    write(lib / "oracle.py", LIBRARY)
    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    write(conf / "oracle.toml", CONFIG)
    write(tmp_path / "oracle.txt", answer)
    return {
        "PYTHONPATH": str(lib),
        "RETRACE_CONFIG_PATH": str(conf),
        "ORACLE": str(tmp_path / "oracle.txt"),
    }


def test_module_imported_while_running_is_patched(retrace: Run, tmp_path: Path) -> None:
    env = _setup(tmp_path, "forty-two")
    rec, rep = record_and_replay(
        retrace,
        tmp_path,
        PROGRAM,
        env=env,
        replay_env=env,
        change=lambda: write(tmp_path / "oracle.txt", "changed"),
    )
    assert rec.returncode == 0, rec.stderr
    assert "answer forty-two Crossing" in rec.stdout
    assert_same(rec, rep)


def test_preloaded_in_one_run_only_replays(retrace: Run, tmp_path: Path) -> None:
    # The replay's interpreter has the configured modules loaded before the program starts
    # (a sitecustomize imports them); the recorded one imported them while the program ran.
    env = _setup(tmp_path, "forty-two")
    site = tmp_path / "site"
    site.mkdir()
    write(
        site / "sitecustomize.py",
        "import oracle, socket, uuid, ssl, sqlite3, http.client, logging\n",
    )
    replay_env = dict(env, PYTHONPATH=f"{site}:{env['PYTHONPATH']}")
    rec, rep = record_and_replay(
        retrace,
        tmp_path,
        PROGRAM,
        env=env,
        replay_env=replay_env,
        change=lambda: write(tmp_path / "oracle.txt", "changed"),
    )
    assert rec.returncode == 0, rec.stderr
    assert_same(rec, rep)
    # ... and the other way round.
    rec2 = retrace("record", "-o", "run2.retrace", "--", str(tmp_path / "prog.py"), env=replay_env)
    assert rec2.returncode == 0, rec2.stderr
    rep2 = retrace("replay", "run2.retrace", env=env)
    assert_same(rec2, rep2)
