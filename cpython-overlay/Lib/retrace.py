"""Public Retrace probe API of a patched CPython.

This module is a thin policy layer over the ``_retrace`` builtin:
coordinates, thread deltas and location hashes of the running threads;
``exclude``/``include`` scopes; thread scheduling callbacks; ``call_at``;
and ``ThreadHandoff``.  Callbacks registered here are wrapped with
``exclude`` so that their own frames never show up in coordinates.
"""

import _retrace

__all__ = [
    "ABI_VERSION",
    "FEATURE_FLAGS",
    "ThreadHandoff",
    "call_at",
    "callbacks",
    "coordinates",
    "exclude",
    "hash",
    "identity_hash",
    "include",
    "main_thread_id",
    "root_seed",
    "thread_delta",
    "thread_id",
]

ABI_VERSION = _retrace.ABI_VERSION
FEATURE_FLAGS = _retrace.FEATURE_FLAGS
ThreadHandoff = _retrace.ThreadHandoff
thread_delta = _retrace.thread_delta
hash = _retrace.hash
thread_id = _retrace.thread_id
main_thread_id = _retrace.main_thread_id
root_seed = _retrace.root_seed
identity_hash = _retrace.identity_hash
exclude = _retrace.exclude
include = _retrace.include


# Accepts (thread_id=None, drop=0); a C function adds no frame of its own.
coordinates = _retrace.coordinates


def _wrap(callback):
    if callback is None:
        return None
    if not callable(callback):
        raise TypeError(f"callback must be callable or None, not {type(callback).__name__}")
    return exclude(callback)


def _unwrap(wrapped):
    return None if wrapped is None else wrapped.__wrapped__


class _Callbacks:
    """Thread scheduling callbacks: assign a no-argument callable or None."""

    __slots__ = ()

    @property
    def thread_start(self):
        return _unwrap(_retrace.get_thread_start_callback())

    @thread_start.setter
    def thread_start(self, callback):
        _retrace.set_thread_start_callback(_wrap(callback))

    @property
    def thread_yield(self):
        return _unwrap(_retrace.get_thread_yield_callback())

    @thread_yield.setter
    def thread_yield(self, callback):
        _retrace.set_thread_yield_callback(_wrap(callback))

    @property
    def thread_resume(self):
        return _unwrap(_retrace.get_thread_resume_callback())

    @thread_resume.setter
    def thread_resume(self, callback):
        _retrace.set_thread_resume_callback(_wrap(callback))

    def __repr__(self):
        return (
            f"<retrace.callbacks start={self.thread_start!r} "
            f"yield={self.thread_yield!r} resume={self.thread_resume!r}>"
        )


callbacks = _Callbacks()


def call_at(thread_id, coordinates=None, callback=None, overshoot_callback=None):
    """Arm ``callback()`` for the moment ``thread_id`` reaches ``coordinates``.

    ``overshoot_callback()`` runs instead when the thread passes the target
    without hitting it exactly.  ``call_at(None)`` disarms.  Raises
    ``ValueError`` when the target is already in the past.
    """
    if thread_id is None:
        _retrace.call_at(None)
        return
    if callback is None:
        raise TypeError("call_at() needs a callback")
    coords = tuple(coordinates)
    over = None if overshoot_callback is None else exclude(overshoot_callback)
    _retrace.call_at(thread_id, coords, exclude(callback), over)


# Arming happens from control-plane code: its frame must stay invisible.
call_at = exclude(call_at)
