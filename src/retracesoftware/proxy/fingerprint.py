"""Argument fingerprints: ``(shape, digest)`` of a call.

:func:`fingerprint` is the native ``utils.fingerprint_full``; the native ``Crossing`` fast path
computes the same function for the arguments it handles, so a call fingerprints identically
whichever path handles it.  :func:`reference_fingerprint` is a plain-Python statement of the
same function, kept as the specification (the tests check the native code against it).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from retracesoftware.utils import DIGEST_PREFIX, FNV_OFFSET, Boundary, fingerprint_full, fnv1a

TYPE_CHECKING = False  # not typing's: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Classifier", "fingerprint", "reference_fingerprint"]

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_MAX_ITEMS = 16
_pack_d = struct.Struct("<d").pack
_pack_q = struct.Struct("<Q").pack

#: classify(obj) -> (code, payload) for objects that are not plain data, or None.
if TYPE_CHECKING:
    Classifier = Callable[[Any], "tuple[str, bytes] | None"]
else:
    Classifier = Callable[[object], "tuple[str, bytes] | None"]  # [Any] to type checkers


def _u64(n: int) -> bytes:
    return _pack_q(n & 0xFFFFFFFFFFFFFFFF)


def _feed(buf: bytearray, obj: Any, classify: Classifier | None, depth: int) -> str:
    """Append the encoding of *obj* to *buf*; return its shape code."""
    if obj is None:
        buf += b"N"
        return "N"
    if obj is True or obj is False:
        buf += b"b\x01" if obj else b"b\x00"
        return "b"
    special = classify(obj) if classify is not None else None
    if special is not None:
        code, payload = special
        buf += code.encode("ascii")
        buf += payload
        return code
    if isinstance(obj, int):
        value = int(obj)
        if _INT64_MIN <= value <= _INT64_MAX:
            buf += b"i"
            buf += _u64(value)
        else:
            buf += b"I"
            buf += str(value).encode("ascii")
        return "i"
    if isinstance(obj, float):
        buf += b"f"
        buf += _pack_d(float(obj))
        return "f"
    if isinstance(obj, str):
        text = str.__str__(obj)  # the characters themselves, whatever a subclass overrides
        buf += b"s"
        buf += _u64(len(text))
        buf += text[:DIGEST_PREFIX].encode("utf-32-le", "surrogatepass")
        return "s"
    if isinstance(obj, bytes):
        buf += b"y"
        buf += _u64(len(obj))
        buf += bytes(obj[:DIGEST_PREFIX])
        return "y"
    if isinstance(obj, complex):
        buf += b"c"
        buf += _pack_d(obj.real)
        buf += _pack_d(obj.imag)
        return "c"
    if isinstance(obj, (tuple, list)):
        code = "t" if isinstance(obj, tuple) else "l"
        buf += code.encode("ascii")
        buf += _u64(len(obj))
        if depth < 4:
            for item in obj[:_MAX_ITEMS]:
                _feed(buf, item, classify, depth + 1)
        return code
    if isinstance(obj, dict):
        buf += b"d"
        buf += _u64(len(obj))
        if depth < 4:
            for n, (key, value) in enumerate(obj.items()):
                if n >= _MAX_ITEMS:
                    break
                _feed(buf, key, classify, depth + 1)
                _feed(buf, value, classify, depth + 1)
        return "d"
    if isinstance(obj, (set, frozenset)):
        # Iteration order of a set can differ between processes: only the size counts.
        buf += b"S"
        buf += _u64(len(obj))
        return "S"
    name = f"{type(obj).__module__}.{type(obj).__qualname__}"
    buf += b"?"
    buf += name.encode("utf-8", "surrogatepass")
    return "?"


def fingerprint(
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None,
    classify: Classifier | None = None,
    boundary: Boundary | None = None,
) -> tuple[str, int]:
    """Return ``(shape, digest)`` for a call with *args* and *kwargs* (native).

    Objects bound in *boundary* fingerprint as ``o`` + handle; *classify* gives the code and
    payload of other objects that are neither plain data nor containers (or ``None``).
    """
    return fingerprint_full(args, kwargs, classify, boundary)


def reference_fingerprint(
    args: tuple[Any, ...], kwargs: dict[str, Any] | None, classify: Classifier | None = None
) -> tuple[str, int]:
    """The same function as :func:`fingerprint`, in Python (the specification).

    *classify* is consulted for every object except ``None`` and ``bool``.
    """
    buf = bytearray()
    codes = [_feed(buf, arg, classify, 0) for arg in args]
    shape = "".join(codes)
    if kwargs:
        parts = [shape]
        for name, value in kwargs.items():
            buf += b"k"
            buf += name.encode("utf-32-le", "surrogatepass")
            parts.append(f",{name}={_feed(buf, value, classify, 0)}")
        shape = "".join(parts)
    return shape, fnv1a(bytes(buf), FNV_OFFSET)
