"""Native vs pure functional combinators, and vs their stdlib equivalents.

Each ratio divides the first column by a baseline measured in the same run:
native ``partial`` against ``functools.partial`` (target <= 1.2x), native
3-function ``compose`` against a nested lambda (target <= 0.8x), and every
native combinator against its pure twin (target: pure/native >= 2x).
"""

from __future__ import annotations

import functools
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import paired, report

native = importlib.import_module("retracesoftware.functional._functional")
pure = importlib.import_module("retracesoftware.functional._pure")


def add(a, b, c=0):
    return a + b + c


def inc(x):
    return x + 1


def cases(m):
    """name -> thunk calling the combinator built from backend module *m*."""
    p = m.partial(add, 1)
    pk = m.partial(add, 1, c=2)
    c = m.compose(abs, str, len)
    s = m.sequence(abs, abs)
    j = m.juxt(abs, abs)
    f = m.first_of(m.constantly(None), abs)
    d = m.dispatch(m.is_type(str), len, m.is_instance(int), abs, m.identity)
    mem = m.memoize(abs)
    lru = m.memoize(abs, maxsize=128)
    a = m.and_(m.is_instance(int), m.not_(m.is_type(bool)))
    o = m.or_(m.is_type(str), m.is_type(int))
    w = m.when(m.is_type(int), abs)
    ite = m.if_then_else(m.is_type(int), abs, m.identity)
    se = m.side_effect(abs)
    ar = m.arg(1)
    k = m.constantly(1)
    i = m.identity
    return {
        "partial": lambda: p(2),
        "partial (keywords)": lambda: pk(2),
        "compose (3 functions)": lambda: c(-5),
        "sequence": lambda: s(-5),
        "juxt": lambda: j(-5),
        "first_of": lambda: f(-5),
        "dispatch (2 branches + default)": lambda: d(-5),
        "memoize (hit)": lambda: mem(-5),
        "memoize maxsize=128 (hit)": lambda: lru(-5),
        "and_/not_/is_instance/is_type": lambda: a(5),
        "or_": lambda: o(5),
        "when": lambda: w(-5),
        "if_then_else": lambda: ite(-5),
        "side_effect": lambda: se(-5),
        "arg": lambda: ar(1, 2),
        "constantly": lambda: k(1),
        "identity": lambda: i(1),
    }


def main() -> None:
    fp = functools.partial(add, 1)
    nested_builtins = lambda x: abs(abs(abs(x)))  # noqa: E731
    nested_mixed = lambda x: len(str(abs(x)))  # noqa: E731
    nested_python = lambda x: inc(inc(inc(x)))  # noqa: E731
    composed_builtins = native.compose(abs, abs, abs)
    composed_python = native.compose(inc, inc, inc)
    lru = functools.lru_cache(maxsize=None)(abs)
    nat, pur = cases(native), cases(pure)

    comparisons = [
        ("partial vs functools.partial", nat["partial"], lambda: fp(2), "<= 1.2x"),
        ("compose(abs,abs,abs) vs lambda", lambda: composed_builtins(-5),
         lambda: nested_builtins(-5), "<= 0.8x"),
        ("compose(abs,str,len) vs lambda", nat["compose (3 functions)"],
         lambda: nested_mixed(-5), "(str/len: see docs)"),
        ("compose(3 Python fns) vs lambda", lambda: composed_python(-5),
         lambda: nested_python(-5), "(informative)"),
        ("memoize vs functools.lru_cache", nat["memoize (hit)"], lambda: lru(-5),
         "(informative)"),
    ]  # fmt: skip
    report(
        "functional: native vs stdlib / hand-written",
        [(name, *paired(a, b), target) for name, a, b, target in comparisons],
    )
    rows = []
    for name in nat:
        p, n = paired(pur[name], nat[name], number=100_000)
        rows.append((f"{name} (pure/native)", p, n, ">= 2x"))
    report("functional: pure twin vs native (ratio = pure / native)", rows)


if __name__ == "__main__":
    main()
