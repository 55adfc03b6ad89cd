"""Coordinate contract: shape, ordering, drop, C-driven ordinals, exclude/include."""

import itertools
import operator

import retrace
from _common import check

coords = retrace.coordinates


def shape(c):
    check(isinstance(c, tuple) and len(c) % 2 == 0 and len(c) >= 2, f"bad shape {c!r}")
    check(all(type(w) is int and w >= 0 for w in c), f"non-int words {c!r}")


# Ordering inside one frame, across a loop (backward jumps must not go back).
def ordering():
    seen = []
    for _ in range(50):
        seen.append(coords())
        seen.append(coords())
    return seen


seq = ordering()
for c in seq:
    shape(c)
for a, b in itertools.pairwise(seq):
    check(a < b, f"coordinates went backwards: {a} then {b}")
    check(a[:-1] == b[:-1], "the frame prefix changed inside one activation")


# A child's coordinates extend the caller's prefix and sit between the caller's
# coordinates before and after the call.
def child():
    return coords()


def parent():
    before = coords()
    inner = child()
    after = coords()
    return before, inner, after


before, inner, after = parent()
check(len(inner) == len(before) + 2, "child did not add exactly one pair")
check(before < inner < after, f"child not ordered between caller points: {before} {inner} {after}")
check(inner[: len(before) - 1] == before[:-1], "child prefix differs from the caller's")


# Repeated calls from C at one caller instruction get increasing ordinals.
def probe(_=None):
    return coords()


driven = list(map(probe, range(4)))
ordinals = [c[-2] for c in driven]
check(ordinals == [0, 1, 2, 3], f"C-driven callbacks got ordinals {ordinals}")
check(len({c[:-2] for c in driven}) == 1, "C-driven callbacks saw different parents")
check(driven == sorted(driven) and len(set(driven)) == 4, "C-driven coordinates not increasing")


# drop omits leading words.
def dropped():
    full = coords()
    part = coords(None, 2)
    return full, part


full, part = dropped()
check(len(part) == len(full) - 2 and part[:-1] == full[2:-1], f"drop=2 wrong: {full} / {part}")
check(coords(drop=10_000) == (), "dropping everything must give ()")
check(coords(thread_id=None, drop=0)[:-1] == coords()[:-1], "keyword form differs")

# Unknown thread ids raise LookupError; bad arguments raise TypeError/ValueError.
for bad, exc in (((12345,), LookupError), (("x",), TypeError), ((None, -1), ValueError)):
    try:
        coords(*bad)
    except exc:
        pass
    else:
        check(False, f"coordinates{bad} did not raise {exc.__name__}")


# exclude(): an excluded Python frame is transparent, so it reports exactly
# what a C function called from the same instruction reports.
def at(fn):
    return fn()


via_c = at(retrace.exclude(coords))
via_py = at(retrace.exclude(lambda: coords()))
check(len(via_c) == len(via_py), f"excluded frame visible: {via_c} / {via_py}")
check(via_c[-2:] == via_py[-2:], f"excluded frame changed the caller's words: {via_c} {via_py}")


# Transparent frames do not consume the caller's ordinals; include() makes a
# callable visible again even when called from transparent code.
def noop():
    return None


plain = next(map(operator.call, [probe]))
after_excluded = list(map(operator.call, [retrace.exclude(noop), probe]))[1]
after_visible = list(map(operator.call, [noop, probe]))[1]
check(plain[-2] == 0 and after_excluded[-2] == 0, "an excluded call consumed an ordinal")
check(after_visible[-2] == 1, "a visible call did not consume an ordinal")

nested = retrace.exclude(lambda: retrace.include(probe)())
inside = at(nested)
check(len(inside) == len(via_c) + 2, f"include() did not re-enter visible space: {inside}")
check(inside[-4:-2] == via_c[-2:], "include() frame is not parented to the visible caller")


# Generators: resumed frames keep monotonic coordinates within their own code.
def gen():
    for _ in range(3):
        yield coords()


gens = list(gen())
check(all(a[-1] < b[-1] for a, b in itertools.pairwise(gens)), f"generator coords: {gens}")


# A generator resumed repeatedly from one C call counts like C-driven callbacks;
# a later direct resume (FOR_ITER_GEN, from visible code) is ordinal 0 and
# visible again, whatever its previous activation left behind (a C-driven
# ordinal, transparency).
def numbered():
    while True:
        yield coords()


def first_of(gen):
    for c in gen:
        return c


for _ in range(20):
    reference = first_of(numbered())  # also specialises first_of's FOR_ITER
g = numbered()
by_c = list(itertools.islice(g, 4))
check([c[-2] for c in by_c] == [0, 1, 2, 3], f"C-driven generator ordinals {by_c}")
again = first_of(g)
check(again[-2] == 0, f"direct resume after C-driven ones kept ordinal {again[-2]}")
check(len(again) == len(reference), f"direct resume has another shape: {again} / {reference}")
t = numbered()
hidden = retrace.exclude(next)(t)
check(len(hidden) == len(coords()), f"transparent resume visible: {hidden}")
shown = first_of(t)
check(len(shown) == len(reference) and shown[-2] == 0, f"transparent generator hidden: {shown}")

# hash(): deterministic function of the same stream; differs across points.
h1, h2 = retrace.hash(), retrace.hash()
check(isinstance(h1, int) and 0 <= h1 < 2**64, "hash() out of range")
check(h1 != h2, "hash() equal at two different instructions")
print("ok")
