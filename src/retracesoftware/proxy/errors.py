"""Exceptions raised by the engine."""

from __future__ import annotations

__all__ = ["EngineError", "RecordedException", "ReplayDivergence"]


class EngineError(RuntimeError):
    """Misuse of a :class:`~retracesoftware.proxy.System` (wrong mode, bad target, ...)."""


class ReplayDivergence(Exception):
    """The replayed program did something the recording does not contain.

    Raised at the first call that does not match.  Attributes: ``index`` (event index in the
    recording), ``thread`` (thread tag), ``kind`` (``"function"``, ``"arguments"``,
    ``"values"``, ``"extra call"``, ``"missing call"``, ``"callback"`` or ``"thread"``),
    ``expected`` and ``actual`` (descriptions) and ``location`` ((filename, lineno, function)
    of the program code that made the call, or ``None``).
    """

    def __init__(
        self,
        *,
        index: int,
        thread: int,
        kind: str,
        expected: str,
        actual: str,
        location: tuple[str, int, str] | None,
    ) -> None:
        self.index = index
        self.thread = thread
        self.kind = kind
        self.expected = expected
        self.actual = actual
        self.location = location
        where = (
            f" at {location[0]}:{location[1]} in {location[2]}"
            if location
            else " (no program location)"
        )
        super().__init__(
            f"replay diverged ({kind}) at event {index} on thread {thread}: the recording "
            f"expected {expected}, but the program {actual}{where}"
        )

    def __reduce__(self):  # keep picklability for multiprocessing-style reporting
        return (
            _rebuild,
            (self.index, self.thread, self.kind, self.expected, self.actual, self.location),
        )


def _rebuild(index, thread, kind, expected, actual, location):
    return ReplayDivergence(
        index=index,
        thread=thread,
        kind=kind,
        expected=expected,
        actual=actual,
        location=location,
    )


class RecordedException(Exception):
    """Replay of an exception whose type cannot be found in the replaying process."""

    def __init__(self, type_name: str, args: tuple) -> None:
        self.type_name = type_name
        self.recorded_args = args
        super().__init__(f"{type_name}{args!r}")
