"""A small functional toolkit: combinators and predicates for hot paths.

The combinators are implemented twice, natively in C++ (``_functional``) and
in pure Python (``_pure``), with identical behaviour.  ``backend`` tells which
one this module exports:

* ``"native"`` -- the C++ extension (the default);
* ``"pure"``   -- the Python twin, used when ``RETRACE_FUNCTIONAL=pure`` or
  when the extension cannot be loaded (``backend_reason`` then says why and a
  ``RuntimeWarning`` is issued).

``RETRACE_FUNCTIONAL=native`` makes a failure to load the extension an error.
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType

from . import _pure

__all__ = [
    "and_",
    "arg",
    "backend",
    "backend_reason",
    "compose",
    "constantly",
    "dispatch",
    "first_of",
    "identity",
    "if_then_else",
    "is_instance",
    "is_type",
    "juxt",
    "memoize",
    "not_",
    "or_",
    "partial",
    "sequence",
    "side_effect",
    "when",
]

_ENV = "RETRACE_FUNCTIONAL"
_CHOICES = ("auto", "native", "pure")


def _select() -> tuple[ModuleType, str, str | None]:
    """Pick the implementation according to ``RETRACE_FUNCTIONAL``."""
    choice = os.environ.get(_ENV, "auto").strip().lower() or "auto"
    if choice not in _CHOICES:
        raise ImportError(
            f"{_ENV}={os.environ[_ENV]!r} is not valid; use one of: {', '.join(_CHOICES)}"
        )
    if choice == "pure":
        return _pure, "pure", f"{_ENV}=pure"
    try:
        native = importlib.import_module("._functional", __name__)
    except ImportError as exc:
        if choice == "native":
            raise ImportError(
                f"{_ENV}=native but the native extension cannot be loaded: {exc}"
            ) from exc
        reason = f"native extension unavailable: {exc}"
        warnings.warn(
            f"retracesoftware.functional: using the pure-Python backend ({reason})",
            RuntimeWarning,
            stacklevel=3,
        )
        return _pure, "pure", reason
    return native, "native", None


_impl, backend, backend_reason = _select()

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    from ._pure import (
        and_,
        arg,
        compose,
        constantly,
        dispatch,
        first_of,
        identity,
        if_then_else,
        is_instance,
        is_type,
        juxt,
        memoize,
        not_,
        or_,
        partial,
        sequence,
        side_effect,
        when,
    )
else:
    globals().update({name: getattr(_impl, name) for name in _pure.__all__})
