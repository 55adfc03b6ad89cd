"""The stream <-> engine adapters and the installation of patches in this interpreter."""

from __future__ import annotations

import datetime
import os
import random
import sys
import time
import types
from pathlib import Path

import pytest

from retracesoftware import stream
from retracesoftware.install import (
    ConfigError,
    engine_types,
    install,
    load_config,
    stream_reader,
    stream_writer,
)
from retracesoftware.install.config import Config, ModuleConfig
from retracesoftware.proxy import ErrorValue, Handle, Loan, ReplayDivergence


@pytest.mark.parametrize(
    "value",
    [
        Handle(3, "proxy:x.Y", True),
        Loan(2),
        ErrorValue("builtins.ValueError", ("bad", 1), False),
        (2, 0, [Handle(0), {"k": Loan(1)}]),
    ],
)
def test_engine_values_round_trip(value: object) -> None:
    reg = engine_types()
    assert stream.loads(stream.dumps(value, types=reg), types=reg) == value


@pytest.mark.parametrize(
    "name, payload",
    [
        ("retrace.Handle", (1, 2, 3)),
        ("retrace.Handle", "x"),
        ("retrace.Loan", "1"),
        ("retrace.Error", ("t", [1], False)),
    ],
)
def test_malformed_engine_values_are_corrupt(name: str, payload: object) -> None:
    class Fake:
        pass

    forge = stream.TypeRegistry()
    forge.register(Fake, lambda _: payload, lambda v: v, name=name)
    data = stream.dumps(Fake(), types=forge)
    with pytest.raises(stream.CorruptError):
        stream.loads(data, types=engine_types())


def test_non_engine_event_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "x.retrace"
    with stream.Writer(path, metadata={"retrace": {}}, types=engine_types()) as w:
        w.write((1, 0, "time.time", "", 0), thread=0)
        w.write((99, 0), thread=0)
    with pytest.raises(stream.CorruptError, match="event 1 is not an engine event"):
        stream_reader(path)


def test_mismatched_thread_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "x.retrace"
    with stream.Writer(path, types=engine_types()) as w:
        w.write((7, 1), thread=0)
    with pytest.raises(stream.CorruptError):
        stream_reader(path)


def _program() -> list[object]:
    return [
        time.time(),
        random.random(),
        random.Random(4).random(),
        os.urandom(4),
        datetime.datetime.now() if sys.version_info < (3, 13) else None,
        os.getpid(),
    ]


def test_record_to_file_and_replay_in_process(tmp_path: Path) -> None:
    path = tmp_path / "run.retrace"
    inst = install(load_config())
    try:
        writer = stream_writer(path)
        recorded = inst.system.record(writer, _program)
        writer.stop()
        writer.out.close()
        rec = stream_reader(path)
        assert rec.truncated is None and rec.records == {}
        replayed = inst.system.replay(rec.reader(), _program)
    finally:
        inst.uninstall()
    assert replayed == recorded
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_replay_against_wrong_program_diverges(tmp_path: Path) -> None:
    path = tmp_path / "run.retrace"
    with install(load_config()) as inst:
        writer = stream_writer(path)
        inst.system.record(writer, time.time)
        writer.stop()
        writer.out.close()
        with pytest.raises(ReplayDivergence, match=r"time\.time"):
            inst.system.replay(stream_reader(path).reader(), os.getpid)


def test_uninstall_restores_everything() -> None:
    before = (
        time.time,
        os.urandom,
        random.random,
        datetime.datetime.__dict__["now"],
        "today" in datetime.datetime.__dict__,
        __import__("_thread").start_new_thread,
        __import__("threading")._start_new_thread
        if hasattr(__import__("threading"), "_start_new_thread")
        else None,
    )
    alias = types.ModuleType("retrace_alias_probe")
    alias.now = time.time
    sys.modules[alias.__name__] = alias
    try:
        inst = install(load_config())
        assert time.time is not before[0]
        assert alias.now is not before[0] and "retrace_alias_probe.now" in inst.patched
        inst.uninstall()
        after = (
            time.time,
            os.urandom,
            random.random,
            datetime.datetime.__dict__["now"],
            "today" in datetime.datetime.__dict__,
            __import__("_thread").start_new_thread,
            __import__("threading")._start_new_thread
            if hasattr(__import__("threading"), "_start_new_thread")
            else None,
        )
        assert after == before
        assert alias.now is before[0]
    finally:
        del sys.modules[alias.__name__]


def test_missing_function_names_the_config_file() -> None:
    config = Config(modules={"time": ModuleConfig(functions=["no_such_clock"])})
    config.sources["time"] = ["/somewhere/mine.toml"]
    with pytest.raises(ConfigError, match=r"mine.toml: \[modules.time\].*no_such_clock"):
        install(config)
    assert not isinstance(time.time, type(None))


def test_import_hook_patches_modules_imported_later(tmp_path: Path) -> None:
    (tmp_path / "retrace_late_mod.py").write_text("def ask():\n    return 42\n")
    sys.path.insert(0, str(tmp_path))
    try:
        config = Config(modules={"retrace_late_mod": ModuleConfig(functions=["ask"])})
        config.modules["retrace_late_mod"] = ModuleConfig(functions=["ask"])
        sys.modules.pop("retrace_late_mod", None)
        # not importable yet at install time: the hook patches it on import
        (tmp_path / "retrace_late_mod.py").rename(tmp_path / "hidden.py")
        with install(config) as inst:
            assert "retrace_late_mod" in inst.pending
            (tmp_path / "hidden.py").rename(tmp_path / "retrace_late_mod.py")
            import importlib

            importlib.invalidate_caches()
            mod = importlib.import_module("retrace_late_mod")
            assert "retrace_late_mod.ask" in inst.patched
            assert mod.ask() == 42
            assert type(mod.ask).__name__ == "Crossing"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("retrace_late_mod", None)


def _fresh_modules(tmp_path: Path, sources: dict[str, str]) -> None:
    for name, text in sources.items():
        (tmp_path / f"{name}.py").write_text(text)
        sys.modules.pop(name, None)
    sys.path.insert(0, str(tmp_path))
    import importlib

    importlib.invalidate_caches()


def _forget(tmp_path: Path, names: list[str]) -> None:
    sys.path.remove(str(tmp_path))
    for name in names:
        sys.modules.pop(name, None)


def test_skip_aliases_hold_the_original_in_modules_imported_later(tmp_path: Path) -> None:
    original = time.monotonic
    config = Config(
        modules={"time": ModuleConfig(functions=["monotonic"], skip_aliases_in=["retrace_skip_*"])}
    )
    _fresh_modules(
        tmp_path,
        {
            "retrace_skip_probe": "from time import monotonic as clock\n",
            "retrace_keep_probe": "from time import monotonic as clock\n",
        },
    )
    try:
        with install(config):
            import retrace_keep_probe
            import retrace_skip_probe

            assert time.monotonic is not original
            # loaded after the patching, as if it had been loaded first: the real clock
            assert retrace_skip_probe.clock is original
            assert retrace_keep_probe.clock is time.monotonic  # not skipped: the crossing
            assert retrace_skip_probe.__loader__.__class__.__name__ != "_AfterExec"
    finally:
        _forget(tmp_path, ["retrace_skip_probe", "retrace_keep_probe"])


def test_adapter_waits_until_its_modules_have_finished_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retracesoftware.install import patching

    seen: list[tuple[str, ...]] = []

    def adapter(inst: object) -> None:
        import retrace_outer_probe

        seen.append((retrace_outer_probe.READY, type(retrace_outer_probe.ask).__name__))

    monkeypatch.setitem(patching._ADAPTERS, "probe", adapter)
    monkeypatch.setitem(
        patching._ADAPTER_NEEDS, "probe", ("retrace_inner_probe", "retrace_outer_probe")
    )
    # The configured module is imported by the body of the module the adapter also needs.
    _fresh_modules(
        tmp_path,
        {
            "retrace_inner_probe": "def ask():\n    return 1\n",
            "retrace_outer_probe": "from retrace_inner_probe import ask\nREADY = 'yes'\n",
        },
    )
    config = Config(
        modules={"retrace_inner_probe": ModuleConfig(functions=["ask"], adapters=["probe"])}
    )
    try:
        with install(config) as inst:
            assert "retrace_inner_probe" in inst.pending and not seen
            import retrace_outer_probe

            assert seen == [("yes", "Crossing")]
            assert retrace_outer_probe.ask() == 1
    finally:
        _forget(tmp_path, ["retrace_inner_probe", "retrace_outer_probe"])
