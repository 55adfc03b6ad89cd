"""``os.write`` as a crossing, except to standard output and error.

The ``os-write`` adapter replaces ``os.write`` by :func:`write`: bytes written to descriptors
1 and 2 (the program's standard output and error) are really written in both modes, so
replay reproduces them; writes to any other descriptor are a crossing ``os.write`` (done and
recorded when recording, answered from the recording on replay, where the descriptor, coming
from a replayed ``os.open``, was never opened).
"""

from __future__ import annotations

import os
import types

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from .patching import Installation

__all__ = ["calls", "install", "write"]

_os_write = os.write  # the real function, captured before any patching

#: The function the adapter patches as the crossing ``os.write``.
calls = types.SimpleNamespace(write=_os_write)


def write(fd: int, data: Any, /) -> int:
    """``os.write`` while Retrace is installed."""
    if (fd == 1 or fd == 2) and type(fd) is int:
        return _os_write(fd, data)
    return calls.write(fd, data)


write.__doc__ = _os_write.__doc__


def install(inst: Installation) -> None:
    """The ``os-write`` adapter."""
    inst.system.patch_function(calls, "write", key="os.write")
    inst.patched.append("os.write")
    inst._set_module(os, "write", write)
