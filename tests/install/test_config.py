"""The TOML patch configuration: shipped files load, mistakes name file, table and key."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retracesoftware.install import (
    ConfigError,
    EnvironmentConfig,
    environment,
    is_secret,
    load_config,
)
from retracesoftware.install import config as config_module
from retracesoftware.install.config import SHIPPED_DIR
from retracesoftware.install.environment import snapshot_environment


def test_shipped_configuration_loads() -> None:
    config = load_config()
    assert {"time", "_random", "random", "os", "socket", "builtins", "_thread"} <= set(
        config.modules
    )
    assert "urandom" in config.modules["os"].functions
    assert "getpid" in config.modules["os"].functions  # merged from two files
    assert config.modules["_random"].types == ["Random"]
    assert len(config.files) == len(list(SHIPPED_DIR.glob("*.toml")))
    assert config.digest() == load_config().digest()


@pytest.mark.parametrize(
    "text, phrase",
    [
        ("[modules.time\n", "is not valid TOML"),
        ("bogus = 1\n", "unknown top-level key 'bogus'"),
        ("modules = 3\n", "top-level key 'modules': expected a table"),
        ("[modules.time]\nfuntions = ['time']\n", "[modules.time] key 'funtions': unknown key"),
        ("[modules.time]\nfunctions = 'time'\n", "[modules.time] key 'functions': expected a list"),
        ("[modules.time]\nfunctions = ['ti me']\n", "'ti me' is not a Python name"),
        ("[modules.time]\n", "[modules.time]: names nothing to patch"),
        ("[modules.time]\nadapters = ['nope']\n", "unknown adapter 'nope'"),
        ("[modules.'a-b']\nfunctions = ['x']\n", "'a-b' is not a module name"),
        ("[environment]\nsnapshot = 'yes'\n", "[environment] key 'snapshot': expected true"),
        ("[environment]\nredact = [1]\n", "[environment] key 'redact': expected a list"),
        ("[environment]\ncolour = 1\n", "[environment] key 'colour': unknown key"),
        ("description = 1\n", "'description': expected a string"),
    ],
)
def test_schema_errors_name_file_table_and_key(tmp_path: Path, text: str, phrase: str) -> None:
    (tmp_path / "mine.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config([tmp_path])
    message = str(info.value)
    assert str(tmp_path / "mine.toml") in message
    assert phrase in message


def test_missing_config_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration directory does not exist"):
        load_config([tmp_path / "nope"])


def test_environment_defined_twice(tmp_path: Path) -> None:
    (tmp_path / "extra.toml").write_text("[environment]\nkeep = []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[environment\] is already defined in"):
        load_config([tmp_path])


def test_user_files_add_and_replace(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(
        "[modules.time]\nfunctions = ['time', 'gmtime']\n[modules.json]\nfunctions = ['dumps']\n",
        encoding="utf-8",
    )
    (tmp_path / "files.toml").write_text(  # replaces the shipped files.toml
        "[modules.os]\nfunctions = ['listdir']\n", encoding="utf-8"
    )
    config = load_config([tmp_path])
    assert config.modules["json"].functions == ["dumps"]
    assert config.modules["time"].functions.count("time") == 1
    assert "builtins" not in config.modules
    assert config.digest() != load_config().digest()


def test_config_path_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from retracesoftware.install.config import config_dirs

    monkeypatch.setenv("RETRACE_CONFIG_PATH", f"{tmp_path}:{tmp_path / 'b'}")
    assert config_dirs(["x"]) == [Path("x"), tmp_path, tmp_path / "b"]


@pytest.mark.parametrize(
    "name, secret",
    [
        ("GITHUB_TOKEN", True),
        ("aws_secret_access_key", True),
        ("PGPASSWORD", True),
        ("API_KEY", True),
        ("HTTP_AUTHORIZATION", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
        ("HOME", False),
        ("PATH", False),
        ("LANG", False),
    ],
)
def test_default_secret_patterns(name: str, secret: bool) -> None:
    assert is_secret(name, EnvironmentConfig()) is secret


def test_snapshot_redacts_and_keeps() -> None:
    env = EnvironmentConfig(keep=["PUBLIC_KEY_ID"], placeholder="***")
    snap = snapshot_environment(env, {"A_TOKEN": "x", "PUBLIC_KEY_ID": "k", "HOME": "/h"})
    assert snap == {"A_TOKEN": "***", "PUBLIC_KEY_ID": "k", "HOME": "/h"}


@given(
    st.text(alphabet="aAb*?[]!-", max_size=8),
    st.text(alphabet="aAb*?[]-", max_size=10),
)
def test_fnmatchcase_is_fnmatchs(pattern: str, name: str) -> None:
    assert environment.fnmatchcase(name, pattern) == fnmatch.fnmatchcase(name, pattern)


def test_shipped_files_are_read_at_build_time() -> None:
    known = config_module._shipped_tables()
    names = sorted(p.name for p in SHIPPED_DIR.glob("*.toml"))
    assert sorted(known) == names  # the installed package holds every shipped file, read
    for name in names:
        data = (SHIPPED_DIR / name).read_bytes()
        assert known[name] == (data, tomllib.loads(data.decode()))


def test_read_tables_give_the_parsed_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    read = load_config()
    monkeypatch.setattr(config_module, "_shipped_tables", dict)
    parsed = load_config()
    assert read == parsed
    assert read.digest() == parsed.digest()


def test_a_changed_file_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('[modules.time]\nfunctions = ["time"]\n', encoding="utf-8")
    stale = (b'[modules.time]\nfunctions = ["monotonic"]\n', {"modules": {"time": {}}})
    modules, _ = config_module.parse_file(path, stale)
    assert modules["time"].functions == ["time"]
    same = (path.read_bytes(), {"modules": {"time": {"functions": ["sleep"]}}})
    modules, _ = config_module.parse_file(path, same)  # the table given for these bytes
    assert modules["time"].functions == ["sleep"]
