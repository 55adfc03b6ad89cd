"""The environment snapshot stored in a recording, with secrets redacted."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping

from .config import EnvironmentConfig

__all__ = ["is_secret", "restore_environment", "snapshot_environment"]


def is_secret(name: str, config: EnvironmentConfig) -> bool:
    """True when the variable *name* must be redacted (patterns match case-insensitively)."""
    if name in config.keep:
        return False
    upper = name.upper()
    return any(fnmatch.fnmatchcase(upper, p.upper()) for p in config.redact)


def snapshot_environment(
    config: EnvironmentConfig, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment as it is stored: secret-looking values replaced by the placeholder."""
    env = os.environ if environ is None else environ
    return {
        name: (config.placeholder if is_secret(name, config) else value)
        for name, value in sorted(env.items())
    }


def restore_environment(snapshot: Mapping[str, str]) -> None:
    """Make ``os.environ`` exactly *snapshot* (used before a replay)."""
    for name in list(os.environ):
        if name not in snapshot:
            del os.environ[name]
    for name, value in snapshot.items():
        if os.environ.get(name) != value:
            os.environ[name] = value
