"""The install layer: wires the engine (``proxy``) and the format (``stream``) into a live
interpreter.

* :func:`stream_writer` / :func:`stream_reader` adapt recording files to the engine's
  ``Writer``/``Reader`` protocols;
* :func:`load_config` reads the TOML patch configuration (``install/modules/*.toml`` and user
  directories); :func:`install` applies it (alias patching, adapters, patching on import);
* :func:`record` / :func:`replay` run a whole program against a recording file.

See ``docs/configuration.md`` and ``docs/recording.md``.
"""

from __future__ import annotations

from .adapter import RecordingReader, StreamEventWriter, engine_types, stream_reader, stream_writer
from .config import Config, ConfigError, EnvironmentConfig, ModuleConfig, load_config
from .environment import is_secret, restore_environment, snapshot_environment
from .errors import (
    IncompatibleRecordingError,
    InstallError,
    MalformedRecordingError,
    ProgramNotFoundError,
)
from .patching import Installation, install
from .session import (
    Outcome,
    Program,
    TruncatedReplayError,
    check_compatible,
    read_metadata,
    record,
    replay,
)

__all__ = [
    "Config",
    "ConfigError",
    "EnvironmentConfig",
    "IncompatibleRecordingError",
    "InstallError",
    "Installation",
    "MalformedRecordingError",
    "ModuleConfig",
    "Outcome",
    "Program",
    "ProgramNotFoundError",
    "RecordingReader",
    "StreamEventWriter",
    "TruncatedReplayError",
    "check_compatible",
    "engine_types",
    "install",
    "is_secret",
    "load_config",
    "read_metadata",
    "record",
    "replay",
    "restore_environment",
    "snapshot_environment",
    "stream_reader",
    "stream_writer",
]
