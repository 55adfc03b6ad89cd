"""Patch configuration: TOML files naming what crosses the sandbox boundary.

Each ``*.toml`` file in ``retracesoftware/install/modules/`` (and in user directories) describes
one module or family of modules::

    description = "Clocks"

    [modules.time]
    functions = ["time", "monotonic"]       # module attributes replaced by crossings
    optional = ["thread_time"]              # same, skipped when the platform lacks them

    [modules._random]
    types = ["Random"]                      # classes patched in place (instances are bound)

    [modules.datetime]
    adapters = ["datetime-now"]             # built-in adapters, by name

    [environment]                           # at most once over all files
    redact = ["*TOKEN*", "*SECRET*"]        # fnmatch patterns on variable names
    keep = ["GPG_AGENT_INFO"]               # names never redacted
    placeholder = "<redacted by retrace>"

Files are validated on load; a mistake raises :class:`ConfigError` naming the file, the table
and the key.  A user file with the same name as a shipped one replaces it; other user files add
to the shipped ones (lists of the same module are merged).  The shipped files are read with
``tomllib`` at build time (``_shipped_config``, by ``tools/shipped_config.py``): a file whose
bytes are unchanged is only validated.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from retracesoftware.utils._plain import Record

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

__all__ = [
    "ADAPTERS",
    "SHIPPED_DIR",
    "Config",
    "ConfigError",
    "EnvironmentConfig",
    "ModuleConfig",
    "config_dirs",
    "load_config",
]

#: Directory of the configuration files shipped with Retrace (``SHIPPED_DIR``, a ``Path``, is
#: made on first use: ``pathlib`` is slow to import).
_SHIPPED = os.path.join(os.path.dirname(os.path.realpath(__file__)), "modules")
SHIPPED_DIR: Path  # see __getattr__
#: Environment variable naming extra configuration directories (``os.pathsep``-separated).
CONFIG_PATH_VAR = "RETRACE_CONFIG_PATH"
#: Names of the built-in adapters a ``[modules.X] adapters`` list may use.
ADAPTERS = frozenset({"datetime-now", "stdin", "thread-start"})
ADAPTERS |= {"socket", "selectors", "ssl", "socketserver", "asyncio"}  # network, eventloop
ADAPTERS |= {"subprocess", "os-write"}  # subprocesses, os-level files
ADAPTERS |= {"thread-sync", "futures-lock-order"}  # threads, synchronisation
ADAPTERS |= {"signals", "atexit", "finalizers"}  # signals, exit, finalizers

DEFAULT_REDACT = (
    "*TOKEN*",
    "*SECRET*",
    "*PASSWORD*",
    "*PASSWD*",
    "*KEY*",
    "*AUTH*",
    "*CREDENTIAL*",
    "*COOKIE*",
    "*SESSION*",
    "*PRIVATE*",
)
DEFAULT_PLACEHOLDER = "<redacted by retrace>"

_TOP_KEYS = {"description", "modules", "environment"}
_MODULE_KEYS = {"functions", "optional", "types", "adapters", "skip_aliases_in"}
_ENV_KEYS = {"snapshot", "redact", "keep", "placeholder"}


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or does not follow the schema."""


_MODULE_FIELDS = ("functions", "optional", "types", "adapters", "skip_aliases_in")


class ModuleConfig(Record):
    """What to patch in one module."""

    __slots__ = _FIELDS = _MODULE_FIELDS

    def __init__(
        self,
        functions: list[str] | None = None,
        optional: list[str] | None = None,
        types: list[str] | None = None,
        adapters: list[str] | None = None,
        skip_aliases_in: list[str] | None = None,
    ) -> None:
        self.functions: list[str] = [] if functions is None else functions
        self.optional: list[str] = [] if optional is None else optional
        self.types: list[str] = [] if types is None else types
        self.adapters: list[str] = [] if adapters is None else adapters
        self.skip_aliases_in: list[str] = [] if skip_aliases_in is None else skip_aliases_in

    def merge(self, other: ModuleConfig) -> None:
        for name in _MODULE_FIELDS:
            mine: list[str] = getattr(self, name)
            mine.extend(x for x in getattr(other, name) if x not in mine)


class EnvironmentConfig(Record):
    """How the environment is snapshotted and which variables are redacted."""

    __slots__ = _FIELDS = ("snapshot", "redact", "keep", "placeholder")

    def __init__(
        self,
        snapshot: bool = True,
        redact: list[str] | None = None,
        keep: list[str] | None = None,
        placeholder: str = DEFAULT_PLACEHOLDER,
    ) -> None:
        self.snapshot = snapshot
        self.redact: list[str] = list(DEFAULT_REDACT) if redact is None else redact
        self.keep: list[str] = [] if keep is None else keep
        self.placeholder = placeholder


class Config(Record):
    """The merged configuration: modules to patch, environment policy, files it came from."""

    __slots__ = _FIELDS = ("modules", "environment", "files", "sources")

    def __init__(
        self,
        modules: dict[str, ModuleConfig] | None = None,
        environment: EnvironmentConfig | None = None,
        files: list[str] | None = None,
        sources: dict[str, list[str]] | None = None,
    ) -> None:
        self.modules: dict[str, ModuleConfig] = {} if modules is None else modules
        self.environment = EnvironmentConfig() if environment is None else environment
        self.files: list[str] = [] if files is None else files
        self.sources: dict[str, list[str]] = {} if sources is None else sources

    def as_data(self) -> dict[str, Any]:
        """Plain-data form (stable order), as stored in a recording's header."""
        return {
            "modules": {
                name: {k: list(getattr(mod, k)) for k in _MODULE_FIELDS}
                for name, mod in sorted(self.modules.items())
            },
            "environment": {
                "snapshot": self.environment.snapshot,
                "redact": list(self.environment.redact),
                "keep": list(self.environment.keep),
                "placeholder": self.environment.placeholder,
            },
        }

    def digest(self) -> str:
        """A short hash of :meth:`as_data` (record and replay must use the same config)."""
        text = _canonical_json(self.as_data())
        return _sha256(text.encode()).hexdigest()[:16]


def __getattr__(name: str) -> Any:
    if name == "SHIPPED_DIR":
        from pathlib import Path

        return Path(_SHIPPED)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _canonical_json(value: Any) -> str:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"))`` for plain data, without
    importing ``json`` for the strings, lists, dicts and booleans of :meth:`Config.as_data`."""
    if isinstance(value, str):
        if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
            return f'"{value}"'  # nothing to escape (json escapes outside " " to "~")
    elif value is None or isinstance(value, bool):
        return "null" if value is None else "true" if value else "false"
    elif isinstance(value, list):
        return "[" + ",".join(map(_canonical_json, value)) + "]"
    elif isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = sorted(value.items())
        return "{" + ",".join(f"{_canonical_json(k)}:{_canonical_json(v)}" for k, v in items) + "}"
    import json  # anything else (numbers, escapes)

    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _sha256(data: bytes) -> Any:
    """``hashlib.sha256(data)`` from the built-in module (``hashlib`` loads OpenSSL: slow)."""
    try:
        from _sha2 import sha256  # type: ignore[import-not-found]  # Python >= 3.12
    except ImportError:
        try:
            from _sha256 import sha256  # type: ignore[import-not-found,no-redef]  # 3.11
        except ImportError:
            from hashlib import sha256
    return sha256(data)


def _where(path: str | Path, table: str, key: str | None = None) -> str:
    return f"{path}: [{table}]" + (f" key {key!r}" if key is not None else "")


def _str_list(path: str | Path, table: str, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{_where(path, table, key)}: expected a list of non-empty strings")
    return list(value)


def _identifier_list(path: str | Path, table: str, key: str, value: Any) -> list[str]:
    items = _str_list(path, table, key, value)
    for item in items:
        if not all(part.isidentifier() for part in item.split(".")):
            raise ConfigError(f"{_where(path, table, key)}: {item!r} is not a Python name")
    return items


def _parse_module(path: str | Path, name: str, raw: Any) -> ModuleConfig:
    table = f"modules.{name}"
    if not all(part.isidentifier() for part in name.split(".")):
        raise ConfigError(f"{_where(path, table)}: {name!r} is not a module name")
    if not isinstance(raw, dict):
        raise ConfigError(f"{_where(path, table)}: expected a table")
    unknown = sorted(set(raw) - _MODULE_KEYS)
    if unknown:
        raise ConfigError(
            f"{_where(path, table, unknown[0])}: unknown key (expected one of "
            f"{', '.join(sorted(_MODULE_KEYS))})"
        )
    mod = ModuleConfig()
    for key in ("functions", "optional", "types"):
        if key in raw:
            setattr(mod, key, _identifier_list(path, table, key, raw[key]))
    if "adapters" in raw:
        mod.adapters = _str_list(path, table, "adapters", raw["adapters"])
        for adapter in mod.adapters:
            if adapter not in ADAPTERS:
                raise ConfigError(
                    f"{_where(path, table, 'adapters')}: unknown adapter {adapter!r} "
                    f"(known: {', '.join(sorted(ADAPTERS))})"
                )
    if "skip_aliases_in" in raw:
        mod.skip_aliases_in = _str_list(path, table, "skip_aliases_in", raw["skip_aliases_in"])
    if not (mod.functions or mod.optional or mod.types or mod.adapters):
        raise ConfigError(
            f"{_where(path, table)}: names nothing to patch "
            "(give functions, optional, types or adapters)"
        )
    return mod


def _parse_environment(path: str | Path, raw: Any) -> EnvironmentConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{_where(path, 'environment')}: expected a table")
    unknown = sorted(set(raw) - _ENV_KEYS)
    if unknown:
        raise ConfigError(
            f"{_where(path, 'environment', unknown[0])}: unknown key (expected one of "
            f"{', '.join(sorted(_ENV_KEYS))})"
        )
    env = EnvironmentConfig()
    if "snapshot" in raw:
        if not isinstance(raw["snapshot"], bool):
            raise ConfigError(f"{_where(path, 'environment', 'snapshot')}: expected true or false")
        env.snapshot = raw["snapshot"]
    if "redact" in raw:
        env.redact = _str_list(path, "environment", "redact", raw["redact"])
    if "keep" in raw:
        env.keep = _str_list(path, "environment", "keep", raw["keep"])
    if "placeholder" in raw:
        if not isinstance(raw["placeholder"], str):
            raise ConfigError(f"{_where(path, 'environment', 'placeholder')}: expected a string")
        env.placeholder = raw["placeholder"]
    return env


def parse_file(
    path: str | Path, known: tuple[bytes, Any] | None = None
) -> tuple[dict[str, ModuleConfig], EnvironmentConfig | None]:
    """Read and validate one configuration file.

    *known* is ``(content, table)``: what ``tomllib`` read from a file with that content (the
    shipped files are read at build time; parsing them is most of the cost of this function).
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if known is not None and known[0] == data:
        raw = known[1]
    else:
        import tomllib

        try:
            raw = tomllib.loads(data.decode())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: is not valid TOML: {exc}") from None
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown top-level key {unknown[0]!r} (expected one of "
            f"{', '.join(sorted(_TOP_KEYS))})"
        )
    if "description" in raw and not isinstance(raw["description"], str):
        raise ConfigError(f"{path}: top-level key 'description': expected a string")
    modules_raw = raw.get("modules", {})
    if not isinstance(modules_raw, dict):
        raise ConfigError(f"{path}: top-level key 'modules': expected a table")
    modules = {name: _parse_module(path, name, table) for name, table in modules_raw.items()}
    env = _parse_environment(path, raw["environment"]) if "environment" in raw else None
    return modules, env


def config_dirs(extra: Sequence[str | os.PathLike[str]] = ()) -> list[Path]:
    """The user configuration directories: *extra*, then ``$RETRACE_CONFIG_PATH``."""
    from pathlib import Path

    dirs = [Path(d) for d in extra]
    dirs += [Path(d) for d in os.environ.get(CONFIG_PATH_VAR, "").split(os.pathsep) if d]
    return dirs


def _shipped_tables() -> dict[str, tuple[bytes, Any]]:
    """File name -> (content, table) of the shipped files, read at build time (by
    ``tools/shipped_config.py``; nothing when Retrace runs from a source tree)."""
    try:
        from ._shipped_config import FILES  # type: ignore[import-not-found]
    except ImportError:
        return {}
    return FILES


def load_config(user_dirs: Iterable[str | os.PathLike[str]] = ()) -> Config:
    """Load the shipped configuration, then every ``*.toml`` of *user_dirs* (in order)."""
    shipped = sorted(name for name in os.listdir(_SHIPPED) if name.endswith(".toml"))
    files: dict[str, str | Path] = {name: os.path.join(_SHIPPED, name) for name in shipped}
    for d in user_dirs:
        from pathlib import Path  # only with user directories (slow to import)

        directory = Path(d)
        if not directory.is_dir():
            raise ConfigError(f"{directory}: configuration directory does not exist")
        for p in sorted(directory.glob("*.toml")):
            files[p.name] = p
    config = Config()
    env_from: str | Path | None = None
    known = _shipped_tables()
    for name in sorted(files):
        path = files[name]
        modules, env = parse_file(path, known.get(name))  # also a user file with the same bytes
        for mod_name, mod in modules.items():
            config.sources.setdefault(mod_name, []).append(str(path))
            if mod_name in config.modules:
                config.modules[mod_name].merge(mod)
            else:
                config.modules[mod_name] = mod
        if env is not None:
            if env_from is not None:
                raise ConfigError(
                    f"{path}: [environment] is already defined in {env_from} "
                    "(only one file may define it)"
                )
            config.environment, env_from = env, path
        config.files.append(str(path))
    return config
