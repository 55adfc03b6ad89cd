"""Retrace: deterministic record and replay for Python programs."""

from ._version import __version__

__all__ = ["__version__"]
