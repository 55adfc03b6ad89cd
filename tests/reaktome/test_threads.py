"""Hooks are exact under concurrent mutation from several threads."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import reaktome

THREADS, OPS = 4, 10_000


@pytest.fixture(autouse=True)
def fast_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def run_threads(work: Callable[[int], None]) -> None:
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def body(t: int) -> None:
        try:
            barrier.wait()
            work(t)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert not any(thread.is_alive() for thread in threads)


def recorder() -> tuple[list[tuple[Any, Any, Any]], Callable[..., None]]:
    calls: list[tuple[Any, Any, Any]] = []

    def hook(instance: Any, key: Any, old: Any, new: Any) -> None:
        calls.append((key, old, new))  # list.append is atomic

    return calls, hook


def test_list_append_from_four_threads():
    calls, hook = recorder()
    lst: list[int] = []
    reaktome.patch_list(lst, {"__reaktome_additem__": hook})
    run_threads(lambda t: [lst.append(t * OPS + i) for i in range(OPS)])
    assert len(calls) == THREADS * OPS
    assert len(lst) == THREADS * OPS
    # Every reported index really holds the reported element.
    assert sorted(key for key, _, _ in calls) == list(range(THREADS * OPS))
    assert all(lst[key] == new for key, _, new in calls)


def test_list_setitem_and_pop_from_four_threads():
    calls, hook = recorder()
    lst = list(range(THREADS * OPS))
    reaktome.patch_list(lst, {"__reaktome_delitem__": hook, "__reaktome_setitem__": hook})

    def work(t: int) -> None:
        for i in range(OPS // 2):
            lst[t] = i
            lst.pop()

    run_threads(work)
    assert len(calls) == THREADS * OPS
    assert len(lst) == THREADS * OPS // 2


def test_dict_from_four_threads():
    calls, hook = recorder()
    d: dict[int, int] = {}
    reaktome.patch_dict(d, {"__reaktome_additem__": hook, "__reaktome_setitem__": hook})
    run_threads(lambda t: [d.__setitem__((t * OPS + i) // 2, i) for i in range(OPS)])
    assert len(calls) == THREADS * OPS
    assert len(d) == THREADS * OPS // 2


def test_set_from_four_threads():
    calls, hook = recorder()
    s: set[int] = set()
    reaktome.patch_set(s, {"__reaktome_additem__": hook})
    run_threads(lambda t: [s.add(t * OPS + i) for i in range(OPS)])
    assert len(calls) == THREADS * OPS
    assert {key for key, _, _ in calls} == s


def test_obj_from_four_threads():
    class Target:
        pass

    calls, hook = recorder()
    target = Target()
    reaktome.patch_obj(target, {"__reaktome_setattr__": hook})
    run_threads(lambda t: [setattr(target, f"a{t}", i) for i in range(OPS)])
    assert len(calls) == THREADS * OPS


def test_patch_and_unpatch_while_other_threads_mutate():
    calls, hook = recorder()
    lst: list[int] = []

    def work(t: int) -> None:
        for i in range(OPS):
            if t == 0 and i % 100 == 0:
                reaktome.patch_list(lst, {"__reaktome_additem__": hook})
            elif t == 0 and i % 100 == 50:
                reaktome.unpatch(lst)
            else:
                lst.append(i)

    run_threads(work)
    assert len(lst) == THREADS * OPS - 2 * (OPS // 100)
    assert len(calls) <= len(lst)
    assert all(lst[key] == new for key, _, new in calls)
