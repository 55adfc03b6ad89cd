"""os-level file I/O, pathlib and shutil: done when recording, never on replay."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from retracesoftware import exitcodes

from .conftest import Run, write
from .test_record_replay import assert_same, record_and_replay


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under *root* with its contents (None for directories)."""
    return {
        str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
    }


def _world(root: Path, text: str) -> None:
    if root.exists():
        shutil.rmtree(root)
    (root / "tree" / "sub").mkdir(parents=True)
    (root / "in.txt").write_text(text)
    (root / "tree" / "sub" / "f.txt").write_text("leaf")


PROGRAM = """\
import os, pathlib, shutil
w = {w!r}
fd = os.open(w + "/in.txt", os.O_RDONLY)
print(os.read(fd, 5), os.fstat(fd).st_size, os.lseek(fd, 0, os.SEEK_SET), os.pread(fd, 4, 6))
os.close(fd)
fd = os.open(w + "/new.bin", os.O_WRONLY | os.O_CREAT, 0o644)
print(os.write(fd, b"abc"), os.pwrite(fd, b"Z", 1))
os.close(fd)
os.write(1, b"os.write to stdout is output\\n")
print(os.path.exists(w + "/in.txt"), os.path.isfile(w + "/in.txt"),
      os.path.isdir(w + "/tree"), os.path.exists(w + "/nope"), os.path.getsize(w + "/in.txt"))
os.makedirs(w + "/a/b/c", exist_ok=True)
os.rename(w + "/new.bin", w + "/renamed.bin")
os.replace(w + "/renamed.bin", w + "/a/renamed.bin")
os.mkdir(w + "/d")
os.rmdir(w + "/a/b/c")
os.unlink(w + "/a/renamed.bin")
print(shutil.copy(w + "/in.txt", w + "/copy.txt"))
print(shutil.move(w + "/copy.txt", w + "/moved.txt"))
shutil.rmtree(w + "/tree")
p = pathlib.Path(w) / "p.txt"
print(p.write_text("pathlib text"), p.read_text(), p.exists(), p.is_file())
q = p.rename(pathlib.Path(w) / "q.txt")
print(q.name, p.exists(), q.exists())
q.unlink()
(pathlib.Path(w) / "pdir").mkdir()
print(sorted(os.listdir(w)), sorted(e.name for e in os.scandir(w)))
try:
    os.remove(w + "/missing")
except FileNotFoundError as e:
    print("FileNotFoundError", e.errno, os.path.basename(e.filename))
try:
    os.open(w + "/missing", os.O_RDONLY)
except OSError as e:
    print(type(e).__name__, e.errno)
"""


def test_os_level_io_and_changes_are_not_repeated_on_replay(retrace: Run, tmp_path: Path) -> None:
    world = tmp_path / "world"
    _world(world, "hello data\n")
    source = PROGRAM.format(w=str(world))
    replayed_world: dict[str, bytes | None] = {}

    def change() -> None:
        # every write, rename and delete happened when recording
        after = _snapshot(world)
        assert after["moved.txt"] == b"hello data\n"
        assert "tree" not in after and "pdir" in after and "d" in after
        assert after["a/b"] is None and "a/renamed.bin" not in after
        # a different world: replay must neither read nor change it
        _world(world, "other contents, other size\n")
        replayed_world.update(_snapshot(world))

    rec, rep = record_and_replay(retrace, tmp_path, source, change=change)
    assert rec.returncode == 0, rec.stderr
    assert "b'hello' 11 0 b'data'" in rec.stdout
    assert "os.write to stdout is output" in rec.stdout
    assert "True True True False 11" in rec.stdout
    assert "FileNotFoundError 2 missing" in rec.stdout
    assert "FileNotFoundError 2\n" in rec.stdout
    assert_same(rec, rep)
    assert _snapshot(world) == replayed_world


def test_replay_works_when_the_directory_is_gone(retrace: Run, tmp_path: Path) -> None:
    world = tmp_path / "world"
    _world(world, "hello data\n")
    rec, rep = record_and_replay(
        retrace,
        tmp_path,
        PROGRAM.format(w=str(world)),
        change=lambda: shutil.rmtree(world),
    )
    assert rec.returncode == 0, rec.stderr
    assert_same(rec, rep)
    assert not world.exists()  # nothing was created on replay


def test_changed_path_is_a_divergence(retrace: Run, tmp_path: Path) -> None:
    script = write(tmp_path / "prog.py", "import os\nos.mkdir('one')\n")
    rec = retrace("record", "-o", "run.retrace", "--", str(script))
    assert rec.returncode == 0, rec.stderr
    write(script, "import os\nos.mkdir('two')\n")
    rep = retrace("replay", "run.retrace")
    assert rep.returncode == exitcodes.DIVERGED
    assert "os.mkdir" in rep.stderr and "Traceback" not in rep.stderr
    assert not (tmp_path / "two").exists()


def test_os_read_of_stdin_is_recorded(retrace: Run, tmp_path: Path) -> None:
    script = write(
        tmp_path / "prog.py",
        textwrap.dedent(
            """\
            import os
            data = os.read(0, 100)
            print(len(data), data)
            """
        ),
    )
    rec = retrace("record", "-o", "run.retrace", "--", str(script), input="from stdin\n")
    assert rec.stdout == "11 b'from stdin\\n'\n", rec.stderr
    rep = retrace("replay", "run.retrace", input="something else entirely")
    assert (rep.stdout, rep.returncode) == (rec.stdout, 0)


def test_binary_stdin_is_recorded_and_not_read_on_replay(retrace: Run, tmp_path: Path) -> None:
    script = write(
        tmp_path / "prog.py",
        textwrap.dedent(
            """\
            import sys
            b = sys.stdin.buffer
            print(b.readline(), b.read(3), b.read1(2))
            buf = bytearray(4)
            print(b.readinto(buf), bytes(buf), b.readline())
            print(input(), [line for line in b], b.read())
            try:
                sys.stdin.buffer.fileno()
            except OSError as e:
                print(type(e).__name__)
            """
        ),
    )
    stdin = "first\nABCDEFGHIJ\ntext line\nlast\n"
    rec = retrace("record", "-o", "run.retrace", "--", str(script), input=stdin)
    assert rec.returncode == 0, rec.stderr
    assert rec.stdout.startswith("b'first\\n' b'ABC' b'DE'\n4 b'FGHI' b'J\\n'\ntext line"), (
        rec.stdout
    )
    assert rec.stdout.endswith("UnsupportedOperation\n")
    # replay gets a different (and then no) standard input: it must not read it
    for other in ("not the recorded input\n", ""):
        rep = retrace("replay", "run.retrace", input=other)
        assert (rep.stdout, rep.stderr, rep.returncode) == (rec.stdout, rec.stderr, 0)
