"""``hashseed.early``: the hash-seed re-execution happens before the heavy imports."""

from __future__ import annotations

from pathlib import Path

import pytest

from retracesoftware import hashseed, stream


class Exec(Exception):
    pass


@pytest.fixture
def execs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str]]:
    calls: list[dict[str, str]] = []

    def fake_execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        calls.append(env)
        raise Exec

    monkeypatch.setattr(hashseed.os, "execve", fake_execve)
    monkeypatch.delenv(hashseed._MARK, raising=False)
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    return calls


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["record", "-o", "x", "--", "a.py"], "record"),
        (["--recording", "x", "--", "a.py"], "record"),
        (["--recording=x", "--", "a.py"], "record"),
        (["replay", "--config", "d", "f.retrace"], "replay"),
        (["--", "record"], None),
        (["--version"], None),
    ],
)
def test_command(argv: list[str], command: str | None) -> None:
    assert hashseed._command(argv)[0] == command


def test_replay_file_skips_option_values() -> None:
    assert hashseed._replay_file(["--config", "dir", "f.retrace"]) == "f.retrace"
    assert hashseed._replay_file(["--config", "dir"]) is None


def test_record_without_a_seed_reexecutes_with_one(execs: list[dict[str, str]]) -> None:
    with pytest.raises(Exec):
        hashseed.early(["record", "--", "a.py"])
    assert execs[0]["PYTHONHASHSEED"].isdigit() and execs[0][hashseed._MARK] == "1"


def test_no_reexecution_when_not_needed(
    execs: list[dict[str, str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hashseed.early(["inspect", "f.retrace"])
    hashseed.early(["replay", str(tmp_path / "missing.retrace")])  # the command reports it
    monkeypatch.setenv("PYTHONHASHSEED", "7")
    hashseed.early(["record", "--", "a.py"])
    monkeypatch.setenv(hashseed._MARK, "1")
    monkeypatch.setenv("PYTHONHASHSEED", "random")
    hashseed.early(["record", "--", "a.py"])  # already re-executed
    assert execs == []


def test_replay_reexecutes_with_the_recorded_seed(
    execs: list[dict[str, str]], tmp_path: Path
) -> None:
    path = tmp_path / "r.retrace"
    with stream.Writer(path, metadata={"retrace": {"hash_seed": 1234}}):
        pass
    with pytest.raises(Exec):
        hashseed.early(["replay", str(path)])
    assert execs[0]["PYTHONHASHSEED"] == "1234"
