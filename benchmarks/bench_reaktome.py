"""Benchmark reaktome.

1. Unpatched instances: the cost of list/dict/set operations on instances that were never
   patched, in a process where another instance of the same type was patched, against a fresh
   process where nothing was patched (target: ratio <= 1.05).  The two cases run in child
   processes, alternated, best time of several runs each.
2. Patched instances: the cost of an operation on a patched instance whose hook does nothing,
   as a ratio to the same operation on an unpatched instance (same process).

Run: python benchmarks/bench_reaktome.py  (after installing the package)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import types
from collections.abc import Callable

N = 20_000  # operations per timed run
REPEATS = 9  # timed runs per operation in one process; the best is kept
PROCESSES = 6  # child processes per case, alternated; the best is kept


def _list_append(lst: list[int]) -> None:
    for i in range(N):
        lst.append(i)
    lst.clear()


def _list_setitem(lst: list[int]) -> None:
    for i in range(N):
        lst[i & 255] = i


def _list_pop(lst: list[int]) -> None:
    lst.extend(range(N))
    for _ in range(N):
        lst.pop()


def _dict_setitem(d: dict[int, int]) -> None:
    for i in range(N):
        d[i & 255] = i


def _dict_add_del(d: dict[int, int]) -> None:
    for i in range(N):
        d[i] = i
    for i in range(N):
        del d[i]


def _set_add_discard(s: set[int]) -> None:
    for i in range(N):
        s.add(i)
    for i in range(N):
        s.discard(i)


OPS: dict[str, tuple[Callable[[], object], Callable[..., None]]] = {
    "list.append (+ clear)": (list, _list_append),
    "list[i] = v": (lambda: list(range(256)), _list_setitem),
    "list.pop (+ extend)": (list, _list_pop),
    "dict[k] = v (existing)": (lambda: dict.fromkeys(range(256), 0), _dict_setitem),
    "dict add + del": (dict, _dict_add_del),
    "set.add + discard": (set, _set_add_discard),
}


def best_ns(op: Callable[..., None], instance: object) -> float:
    """Best CPU time per operation (ns) over REPEATS runs, after a warm-up run.

    CPU time rather than wall time: the machine may be shared, and preemption by other
    processes must not count against either case.
    """
    op(instance)
    best = float("inf")
    for _ in range(REPEATS):
        start = time.process_time_ns()
        op(instance)
        best = min(best, time.process_time_ns() - start)
    return best / N


def interleaved(op: Callable[..., None], plain: object, patched: object) -> tuple[float, float]:
    """Best ns/op of op on plain and on patched, measured alternately.

    Each instance gets its own copy of the loop's code, so that each call site specialises for
    one type (a site shared by plain and patched instances stays generic and is slower for both).
    """
    op_plain, op_patched = (types.FunctionType(op.__code__.replace(), op.__globals__) for _ in "ab")
    base = hooked = float("inf")
    for _ in range(4):
        base = min(base, best_ns(op_plain, plain))
        hooked = min(hooked, best_ns(op_patched, patched))
    return base, hooked


def child(mode: str) -> None:
    """Time every operation on unpatched instances; print a JSON dict of ns/op.

    Each operation is timed on several fresh instances (best kept), so that one instance's
    memory placement does not decide the figure.
    """
    if mode == "import-only":
        import reaktome
    if mode == "patched-other":
        import reaktome

        def noop(*args: object) -> None:
            return None

        keep = ([], {}, set())
        reaktome.patch_list(keep[0], {"__reaktome_additem__": noop})
        reaktome.patch_dict(keep[1], {"__reaktome_additem__": noop})
        reaktome.patch_set(keep[2], {"__reaktome_additem__": noop})
        # The patched instances are used too, so their trampolines have run.
        keep[0].append(1)
        keep[1][1] = 1
        keep[2].add(1)
    print(
        json.dumps(
            {name: min(best_ns(op, make()) for _ in range(3)) for name, (make, op) in OPS.items()}
        )
    )


def unpatched_ratios() -> None:
    best: dict[str, dict[str, float]] = {"baseline": {}, "patched-other": {}, "import-only": {}}
    for _ in range(PROCESSES):
        for mode in best:
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            for name, ns in json.loads(out).items():
                best[mode][name] = min(best[mode].get(name, float("inf")), ns)
    print("1. unpatched instances, another instance of the type patched vs nothing patched")
    print("   (control: a process that imports reaktome and patches nothing, i.e. the noise floor)")
    print(
        f"   {'operation':28} {'fresh ns/op':>12} {'after ns/op':>12} {'ratio':>7} {'control':>8}"
    )
    worst = 0.0
    for name in OPS:
        base, other = best["baseline"][name], best["patched-other"][name]
        control = best["import-only"][name] / base
        worst = max(worst, other / base)
        print(f"   {name:28} {base:12.1f} {other:12.1f} {other / base:7.3f} {control:8.3f}")
    verdict = "ok" if worst <= 1.05 else "ABOVE TARGET"
    print(f"   worst ratio {worst:.3f} (target <= 1.05: {verdict})")


def patched_ratios() -> None:
    import reaktome

    def noop(instance: object, key: object, old: object, new: object) -> None:
        return None

    hooks = {
        list: {n: noop for n in reaktome.HOOK_NAMES["list"]},
        dict: {n: noop for n in reaktome.HOOK_NAMES["dict"]},
        set: {n: noop for n in reaktome.HOOK_NAMES["set"]},
    }
    patchers = {list: reaktome.patch_list, dict: reaktome.patch_dict, set: reaktome.patch_set}
    print("2. patched instance with no-op hooks vs unpatched instance (same process)")
    print(f"   {'operation':28} {'plain ns/op':>12} {'patched ns/op':>14} {'ratio':>7}")
    for name, (make, op) in OPS.items():
        plain = make()
        patched = make()
        patchers[type(patched)](patched, hooks[type(patched)])
        base, hooked = interleaved(op, plain, patched)
        print(f"   {name:28} {base:12.1f} {hooked:14.1f} {hooked / base:7.2f}")

    class Point:
        pass

    def setattr_loop(p: Point) -> None:
        for i in range(N):
            p.x = i

    class Other:
        pass

    patched_point, neighbour = Point(), Point()
    reaktome.patch_obj(patched_point, {"__reaktome_setattr__": noop})
    fresh_ns, hooked = interleaved(setattr_loop, Other(), patched_point)
    _, neighbour_ns = interleaved(setattr_loop, Other(), neighbour)
    print(f"   {'obj.x = v':28} {fresh_ns:12.1f} {hooked:14.1f} {hooked / fresh_ns:7.2f}")
    print(
        f"   {'obj.x = v, unpatched neighbour':28} {fresh_ns:12.1f} {neighbour_ns:14.1f} "
        f"{neighbour_ns / fresh_ns:7.2f}  (class of a patched instance)"
    )


def main() -> None:
    print(f"reaktome benchmark, Python {sys.version.split()[0]}, {N} operations per run")
    unpatched_ratios()
    patched_ratios()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
