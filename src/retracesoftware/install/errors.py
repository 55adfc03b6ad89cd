"""Errors of the install layer (the CLI maps each to its own exit code)."""

from __future__ import annotations

__all__ = [
    "IncompatibleRecordingError",
    "InstallError",
    "MalformedRecordingError",
    "ProgramNotFoundError",
]


class InstallError(Exception):
    """Base class of the errors below."""


class ProgramNotFoundError(InstallError):
    """The program to record or replay (script or module) does not exist."""


class IncompatibleRecordingError(InstallError):
    """The recording was made by another Python, Retrace version or patch configuration."""


class MalformedRecordingError(InstallError):
    """The recording is readable but its Retrace metadata is missing or malformed."""
