"""sqlite3 on disk: the database is used when recording and never opened on replay."""

from __future__ import annotations

from pathlib import Path

from retracesoftware import exitcodes

from .conftest import Run, write
from .test_record_replay import assert_same, record_and_replay

PROGRAM = """\
import contextlib, sqlite3
db = {db!r}
conn = sqlite3.connect(db)
cur = conn.cursor()
cur.execute("create table if not exists t (id integer primary key, name text, score real, "
            "data blob)")
cur.executemany("insert into t (name, score, data) values (?, ?, ?)",
                [("a", 1.5, b"x"), ("b", None, b"\\0y"), ("c", -2.0, None)])
conn.commit()
print("rowcount", cur.rowcount, conn.total_changes)
for row in conn.execute("select * from t order by id"):
    print(row)
cur.execute("select name, score from t where score > ? order by name", (-5,))
print(cur.fetchone(), cur.fetchmany(1), cur.fetchall(), [d[0] for d in cur.description])
print(conn.execute("select count(*), max(score) from t").fetchone())
conn.create_function("shout", 1, lambda s: None if s is None else s.upper() + "!")
print(conn.execute("select shout(name) from t order by id").fetchall())
conn.row_factory = sqlite3.Row
r = conn.execute("select * from t where name = 'a'").fetchone()
print(r["name"], r[2], tuple(r), r.keys())
with conn:
    conn.execute("insert into t (name) values ('d')")
print(conn.in_transaction, conn.execute("select last_insert_rowid()").fetchone()[0])
try:
    conn.execute("select * from no_such_table")
except sqlite3.OperationalError as e:
    print("OperationalError:", e)
try:
    with conn:
        conn.execute("insert into t (id, name) values (1, 'dup')")
except sqlite3.IntegrityError as e:
    print("IntegrityError:", e)
conn.close()
with contextlib.closing(sqlite3.connect(db)) as again:
    print(again.execute("select group_concat(name) from t").fetchone())
"""


def test_sqlite_replays_without_the_database(retrace: Run, tmp_path: Path) -> None:
    db = tmp_path / "data.db"

    def change() -> None:
        assert db.exists()
        db.unlink()

    rec, rep = record_and_replay(retrace, tmp_path, PROGRAM.format(db=str(db)), change=change)
    assert rec.returncode == 0, rec.stderr
    assert "(2, 'b', None, b'\\x00y')" in rec.stdout
    assert "['A!', 'B!', 'C!']" not in rec.stdout  # rows are tuples
    assert "[('A!',), ('B!',), ('C!',)]" in rec.stdout
    assert "a 1.5 (1, 'a', 1.5, b'x') ['id', 'name', 'score', 'data']" in rec.stdout
    assert "OperationalError: no such table: no_such_table" in rec.stdout
    assert "IntegrityError:" in rec.stdout
    assert "('a,b,c,d',)" in rec.stdout
    assert_same(rec, rep)
    assert not db.exists()  # replay never opened (and so never created) the database
    assert not any(p.name.startswith("data.db") for p in tmp_path.iterdir())


def test_replay_ignores_a_changed_database(retrace: Run, tmp_path: Path) -> None:
    db = tmp_path / "data.db"

    def change() -> None:
        import sqlite3

        db.unlink()
        with sqlite3.connect(db) as other:
            other.execute(
                "create table t (id integer primary key, name text, score real, data blob)"
            )
            other.execute("insert into t (name) values ('zzz')")
        other.close()

    rec, rep = record_and_replay(retrace, tmp_path, PROGRAM.format(db=str(db)), change=change)
    assert rec.returncode == 0, rec.stderr
    assert_same(rec, rep)
    import sqlite3

    with sqlite3.connect(db) as check:
        assert check.execute("select name from t").fetchall() == [("zzz",)]
    check.close()


def test_changed_query_is_a_divergence(retrace: Run, tmp_path: Path) -> None:
    code = "import sqlite3\nc = sqlite3.connect('x.db')\nprint(c.execute({!r}).fetchall())\n"
    script = write(tmp_path / "prog.py", code.format("select 1"))
    rec = retrace("record", "-o", "run.retrace", "--", str(script))
    assert rec.returncode == 0, rec.stderr
    write(script, code.format("select 2"))
    rep = retrace("replay", "run.retrace")
    assert rep.returncode == exitcodes.DIVERGED, rep.stderr
    assert "replay diverged (values)" in rep.stderr and "Traceback" not in rep.stderr
