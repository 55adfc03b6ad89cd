"""Run a pytest suite under record and then replay: every test whose replay diverges is reported.

This is how Retrace proves that it covers a library: the library's own tests run recorded, then
each one is replayed at once, and a test whose replay does not reproduce the recorded run (a
call the recording does not have, a different outcome or different output) is reported.

* as a pytest plugin: ``python -m pytest -p retracesoftware.testing [PYTEST ARGS]``;
* from the command line: ``retrace test -- [PYTEST ARGS]``;
* from Python: ``TestRunner(["tests/"]).run()`` returns a :class:`Summary`.

Each test item runs twice in the same process: once recorded (setup, call and teardown, into
its own in-memory recording) and once replayed against that recording.  Both runs start with no
fixture set up and tear every fixture down (module- and session-scoped ones included), so that
they start from the same state.  The recorded run's reports are the test's result; a
divergence turns a passing test into a failure (``--retrace-report-only``: a summary line only).
See ``docs/testing.md``.
"""

from __future__ import annotations

import contextlib
import gc
import linecache
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from _pytest.reports import TestReport
from _pytest.runner import runtestprotocol

from .install import Config, ConfigError, Installation, install, load_config
from .install.config import config_dirs
from .proxy import MemoryWriter, ReplayDivergence
from .utils import GateState
from .utils._plain import FrozenRecord, Record

_INSIDE = int(GateState.INSIDE)
_DISABLED = int(GateState.DISABLED)

__all__ = ["ItemResult", "RetracePlugin", "Summary", "TestRunner", "install_for_pytest"]

_PLUGIN_NAME = "retracesoftware-testing"


class ItemResult(FrozenRecord):
    """One test item: its recorded ``outcome`` and why its replay diverged (``None``: it did
    not), with the number of recorded ``events`` (immutable)."""

    __slots__ = _FIELDS = ("nodeid", "outcome", "events", "divergence")
    nodeid: str
    outcome: str
    events: int
    divergence: str | None

    def __init__(
        self, nodeid: str, outcome: str, events: int, divergence: str | None = None
    ) -> None:
        object.__setattr__(self, "nodeid", nodeid)
        object.__setattr__(self, "outcome", outcome)
        object.__setattr__(self, "events", events)
        object.__setattr__(self, "divergence", divergence)


class Summary(Record):
    """What a run under :class:`TestRunner` found."""

    __slots__ = _FIELDS = ("exit_code", "items")

    def __init__(self, exit_code: int, items: list[ItemResult] | None = None) -> None:
        self.exit_code = exit_code
        self.items: list[ItemResult] = [] if items is None else items

    @property
    def diverged(self) -> list[ItemResult]:
        return [r for r in self.items if r.divergence is not None]

    @property
    def replayed(self) -> int:
        return len(self.items) - len(self.diverged)

    def counts(self) -> dict[str, int]:
        """Tests run, replayed identically and diverged; recorded outcomes."""
        out = {"tests": len(self.items), "replayed": self.replayed, "diverged": len(self.diverged)}
        for item in self.items:
            out[item.outcome] = out.get(item.outcome, 0) + 1
        return out


def _outcome(reports: Sequence[TestReport]) -> str:
    for rep in reports:
        if rep.failed:
            return "failed" if rep.when == "call" else "error"
    for rep in reports:
        if rep.skipped:
            return "xfailed" if hasattr(rep, "wasxfail") else "skipped"
    if any(hasattr(rep, "wasxfail") for rep in reports):
        return "xpassed"
    return "passed"


def _crash(rep: TestReport) -> str:
    """The exception type of a failed phase (messages may hold addresses and are not compared)."""
    crash = getattr(rep.longrepr, "reprcrash", None)
    message = getattr(crash, "message", None) or str(rep.longrepr).strip().splitlines()[-1:]
    text = message if isinstance(message, str) else " ".join(message)
    return text.split(":", 1)[0].strip()


def compare(recorded: Sequence[TestReport], replayed: Sequence[TestReport]) -> str | None:
    """How the replayed run's reports differ from the recorded run's (``None``: they do not)."""
    if [r.when for r in recorded] != [r.when for r in replayed]:
        return (
            f"phases differ: recorded {[r.when for r in recorded]}, "
            f"replayed {[r.when for r in replayed]}"
        )
    for rec, rep in zip(recorded, replayed, strict=True):
        if rec.outcome != rep.outcome:
            detail = f" ({_crash(rep)})" if rep.failed else ""
            return f"{rec.when}: recorded {rec.outcome}, replayed {rep.outcome}{detail}"
        if rec.failed and _crash(rec) != _crash(rep):
            return f"{rec.when}: recorded {_crash(rec)}, replayed {_crash(rep)}"
        for name, text in (("stdout", "capstdout"), ("stderr", "capstderr")):
            if getattr(rec, text) != getattr(rep, text):
                return f"{rec.when}: the test's {name} differs between record and replay"
    return None


class RetracePlugin:
    """The pytest plugin: records and replays each test item (see the module docstring)."""

    def __init__(self, config_dirs: Sequence[str | os.PathLike[str]] = (), *, fail: bool = True):
        self.config_dirs = list(config_dirs)
        self.fail = fail
        self.results: list[ItemResult] = []
        self.installation: Installation | None = None
        self.item_tmp: Path | None = None  # the current item's tmp_path (same in both runs)
        self._tmp_root: Path | None = None
        self._config: Config | None = None  # read by pytest_configure

    @contextlib.contextmanager
    def _inside(self) -> Iterator[None]:
        """Sandbox the test's own code (fixtures, test function, teardown) during a run."""
        installation = self.installation
        if installation is None or not installation.system.mode:
            yield
            return
        with installation.system.gate.scope(_INSIDE, 0):
            yield

    def _fresh_tmp(self, item: pytest.Item) -> None:
        """Empty the item's temporary directory, outside the sandbox (before each run)."""
        if self.item_tmp is None:
            return
        shutil.rmtree(self.item_tmp, ignore_errors=True)
        self.item_tmp.mkdir(parents=True)

    def _run(self, item: pytest.Item) -> list[TestReport]:
        """One run of the item: pytest's machinery outside the sandbox, the test's code in it."""
        assert self.installation is not None
        with self.installation.system.gate.scope(_DISABLED, 0):
            # garbage left by earlier tests is finalized now, not at a random point of the run
            gc.collect()
            # both runs start with the same source-line cache (tracebacks, doctest, inspect
            # fill it with os.stat calls that would otherwise happen in the first run only)
            linecache.clearcache()
            self._fresh_tmp(item)
            item._report_sections = []  # captured output of this run only
            return runtestprotocol(item, log=False, nextitem=None)

    # The innermost wrappers (trylast): other plugins' wrappers (capture, logging...) stay
    # outside the sandbox; what runs inside is the fixture functions, the test itself (any kind
    # of item) and the teardown of its fixtures.

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Generator[None, Any, Any]:
        with self._inside():
            return (yield)

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_call(self, item: Any) -> Generator[None, Any, Any]:
        with self._inside():
            return (yield)

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_teardown(self, item: Any, nextitem: Any) -> Generator[None, Any, Any]:
        with self._inside():
            return (yield)

    def pytest_configure(self, config: pytest.Config) -> None:
        """Read the patch configuration now: an invalid one is a usage error, not a crash."""
        try:
            self._config = load_config(config_dirs(self.config_dirs))
        except ConfigError as exc:
            raise pytest.UsageError(f"retrace: invalid configuration: {exc}") from None
        for mod in self._config.modules.values():
            # pytest owns sys.stdin (its capture replaces it); tests never read a terminal
            mod.adapters = [a for a in mod.adapters if a != "stdin"]

    def _install(self) -> Installation:
        """Patch the interpreter at the first test: after collection, so that the aliases test
        modules made (``from time import time``) are patched too."""
        if self.installation is None:
            if self._config is None:
                raise RuntimeError("the Retrace plugin was not configured by pytest")
            self.installation = install(self._config)
        return self.installation

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool:
        system = self._install().system
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        if self._tmp_root is None:
            factory = getattr(item.config, "_tmp_path_factory", None)  # None: -p no:tmpdir
            self._tmp_root = (
                Path(tempfile.mkdtemp(prefix="retrace-tests-"))
                if factory is None
                else factory.mktemp("retrace", numbered=True)
            )
        name = re.sub(r"[\W]", "_", item.name)[:30]
        self.item_tmp = self._tmp_root / f"{len(self.results)}-{name}"
        writer = MemoryWriter()
        # runtestprotocol(nextitem=None) tears every fixture down: replay starts from the same
        # state as the recorded run
        recorded = system.record(writer, self._run, item)
        divergence: str | None
        try:
            replayed = system.replay(writer.reader(), self._run, item)
        except ReplayDivergence as exc:
            divergence = str(exc)
        except pytest.exit.Exception:
            raise
        except Exception as exc:  # the engine could not replay the test at all
            divergence = f"replay failed: {type(exc).__name__}: {exc}"
        else:
            divergence = compare(recorded, replayed)
        outcome = _outcome(recorded)
        self.results.append(ItemResult(item.nodeid, outcome, len(writer.events), divergence))
        if divergence is not None:
            text = f"retrace: the replay of this test diverged from its recording: {divergence}"
            last = recorded[-1]
            last.sections.append(("retrace replay", text))
            if self.fail and not any(r.failed for r in recorded):
                call = next((r for r in recorded if r.when == "call"), last)
                call.outcome = "failed"
                call.longrepr = text
        for rep in recorded:
            ihook.pytest_runtest_logreport(report=rep)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def pytest_sessionfinish(self) -> None:
        self.item_tmp = None
        if self.installation is not None:
            self.installation.uninstall()
            self.installation = None

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        tr = terminalreporter
        diverged = [r for r in self.results if r.divergence is not None]
        tr.write_sep("=", "retrace: record and replay")
        events = sum(r.events for r in self.results)
        tr.write_line(
            f"{len(self.results)} tests recorded ({events} events) and replayed: "
            f"{len(self.results) - len(diverged)} identical, {len(diverged)} diverged"
        )
        for result in diverged:
            tr.write_line(f"DIVERGED {result.nodeid}: {result.divergence}")


def _plugin(config: pytest.Config) -> RetracePlugin | None:
    for plugin in config.pluginmanager.get_plugins():
        if isinstance(plugin, RetracePlugin):
            return plugin
    return None


@pytest.fixture
def tmp_path(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Replaces pytest's ``tmp_path``: the same (emptied) directory in the recorded and the
    replayed run of a test, created outside the sandbox."""
    plugin = _plugin(request.config)
    if plugin is None or plugin.item_tmp is None:
        name = re.sub(r"[\W]", "_", request.node.name)[:30]
        return tmp_path_factory.mktemp(name, numbered=True)
    return plugin.item_tmp


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("retrace", "Retrace record and replay")
    group.addoption(
        "--retrace-config",
        action="append",
        default=[],
        metavar="DIR",
        help="a directory of extra patch configuration files (*.toml); repeatable",
    )
    group.addoption(
        "--retrace-report-only",
        action="store_true",
        help="report divergent tests in the summary only (do not fail them)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin when this module is loaded with ``-p retracesoftware.testing``."""
    if _plugin(config) is None:
        plugin = RetracePlugin(
            config.getoption("retrace_config"), fail=not config.getoption("retrace_report_only")
        )
        config.pluginmanager.register(plugin, _PLUGIN_NAME)


def install_for_pytest(
    config: pytest.Config,
    config_dirs: Sequence[str | os.PathLike[str]] = (),
    *,
    fail: bool = True,
) -> RetracePlugin:
    """Register the record-and-replay plugin on a pytest *config* (e.g. from a ``conftest.py``
    ``pytest_configure``); returns the plugin (its ``results`` fill as tests run)."""
    plugin = _plugin(config)
    if plugin is None:
        plugin = RetracePlugin(config_dirs, fail=fail)
        config.pluginmanager.register(plugin, _PLUGIN_NAME)
    if not config.pluginmanager.is_registered(sys.modules[__name__]):
        config.pluginmanager.register(sys.modules[__name__])  # its tmp_path fixture
    return plugin


class TestRunner:
    """Run pytest with *args* in this process, every test recorded then replayed.

    ``TestRunner(["tests/", "-q"]).run()`` returns a :class:`Summary` (pytest's exit code and
    one :class:`ItemResult` per test).
    """

    __test__ = False  # not a test class, whatever pytest's collection patterns say

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        config_dirs: Sequence[str | os.PathLike[str]] = (),
        fail: bool = True,
    ) -> None:
        self.args = list(args)
        self.plugin = RetracePlugin(config_dirs, fail=fail)

    def run(self) -> Summary:
        code = pytest.main(self.args, plugins=[sys.modules[__name__], self.plugin])
        return Summary(int(code), list(self.plugin.results))
