"""Identity hashes of object()s (and objects using object.__hash__) are
deterministic across runs and follow RETRACE_ROOT_SEED."""

import gc
import json

import retrace
from _common import check, run_child

CHILD = r"""
import json, threading
class Plain:
    pass
objs = [object() for _ in range(50)] + [Plain() for _ in range(20)]
hashes = [hash(o) for o in objs]
names = {o: i for i, o in enumerate(objs)}
order = [names[o] for o in set(objs)]
box = []
t = threading.Thread(target=lambda: box.extend(hash(object()) for _ in range(5)))
t.start(); t.join()
print(json.dumps({"hashes": hashes, "order": order, "thread": box}))
"""

# Types hashed (at startup, by the ABCs, or here) forget their hash when they
# die, also while no other object holds one (3.13: in type_dealloc, since the
# dealloc hook then stops at one test): a new class at a freed class's address
# gets a fresh hash.
TYPES = r"""
import gc, json
hashes, addresses = [], []
for i in range(200):
    cls = type(f"T{i}", (), {})
    hashes.append(hash(cls))
    addresses.append(id(cls))
    del cls
    gc.collect()
print(json.dumps({"hashes": hashes, "reused": len(addresses) - len(set(addresses))}))
"""
types = json.loads(run_child(TYPES))
check(types["reused"] > 0, "no class address was reused: the type check cannot fail")
check(len(set(types["hashes"])) == len(types["hashes"]), "a dead class's hash was reused")

first = json.loads(run_child(CHILD))
second = json.loads(run_child(CHILD))
check(first == second, "identity hashes or set order differ between two runs")
check(len(set(first["hashes"])) == len(first["hashes"]), "identity hashes collide")
seeded = json.loads(run_child(CHILD, {"RETRACE_ROOT_SEED": "other"}))
check(seeded["hashes"] != first["hashes"], "RETRACE_ROOT_SEED did not change identity hashes")

# In-process properties.
o = object()
h = hash(o)
check(hash(o) == h == object.__hash__(o) == retrace.identity_hash(o), "hash not stable")
check(h != -1 and h >= 0, "identity hash out of range")
live = [object() for _ in range(10_000)]
check(len({hash(x) for x in live}) == len(live), "identity hashes collide in one run")
check(all(hash(x) == hash(x) for x in live[:100]), "hash changed on repeat")
del live
gc.collect()
fresh = [hash(object()) for _ in range(100)]
check(len(set(fresh)) == 100, "freed objects' hashes were reused")


# Identity hashes reached other than through the default tp_hash are forgotten too: a class
# whose __hash__ falls back to object.__hash__, a class whose __hash__ is replaced while its
# instances hold identity hashes, retrace.identity_hash() of an object with a hash of its own.
# Each object dies before the next is made, so the next one takes its address.
class Fallback:
    def __hash__(self):
        return object.__hash__(self)


class Replaced:
    pass


def one_each(make, digest, n=200):
    return [digest(make()) for _ in range(n)]


fresh = one_each(Fallback, hash)
check(len(set(fresh)) == len(fresh), "a dead Fallback's hash was reused (super().__hash__)")
doomed = [Replaced() for _ in range(50)]
check(len({hash(x) for x in doomed}) == 50, "identity hashes collide")
Replaced.__hash__ = lambda self: 7
del doomed
fresh = one_each(Replaced, object.__hash__, 400)
check(len(set(fresh)) == len(fresh), "a dead object's hash was reused after __hash__ changed")
del Replaced.__hash__
fresh = one_each(lambda: [], retrace.identity_hash)
check(len(set(fresh)) == len(fresh), "a dead list's retrace.identity_hash was reused")
print("ok")
