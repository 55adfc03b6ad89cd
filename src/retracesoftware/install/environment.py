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
    return any(fnmatchcase(upper, p.upper()) for p in config.redact)


def fnmatchcase(name: str, pattern: str) -> bool:
    """``fnmatch.fnmatchcase(name, pattern)``; a pattern whose only wildcard is ``*`` (such as
    the default ``*TOKEN*``) is matched directly, without compiling a regular expression (each
    costs more than the whole snapshot)."""
    if "?" in pattern or "[" in pattern:
        return fnmatch.fnmatchcase(name, pattern)
    if "*" not in pattern:
        return name == pattern
    first, *middle, last = pattern.split("*")
    if len(name) < len(first) + len(last) or not (name.startswith(first) and name.endswith(last)):
        return False
    pos, end = len(first), len(name) - len(last)
    for part in middle:  # leftmost placement of each part leaves the most room for the rest
        found = name.find(part, pos, end)
        if found < 0:
            return False
        pos = found + len(part)
    return True


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
