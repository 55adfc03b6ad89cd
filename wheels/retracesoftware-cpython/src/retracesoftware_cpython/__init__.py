"""Patched CPython runtime with Retrace execution probes.

``executable()`` returns the path of the packaged patched interpreter, which
provides the ``retrace`` module and the ``_retrace`` builtin.
"""

from ._launcher import RuntimeMismatchError, executable, main, runtime_info

__all__ = ["RuntimeMismatchError", "executable", "main", "runtime_info"]
