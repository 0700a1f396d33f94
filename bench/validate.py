"""What checking a client update costs: CartDoc.apply_client_update against the alternatives.

For carts of 5 / 50 / 200 lines and three realistic one-transaction edits (set the qty of a
random line; add a line; type or delete one character of a personalisation Y.Text), prints
the cost per update in µs of

  apply    pycrdt.Doc.apply_update alone (no checks: the floor)
  cart     CartDoc.apply_client_update (decode the shape, apply with observers, check what
           was touched, dependency check)
  naive    per update: Doc() + apply the full current state, apply the update to that scratch
           copy, check the whole scratch doc, then apply the update to the live doc

and the ratios cart/apply and naive/cart. If the validator costs more than ~100 µs somewhere,
the costliest case is run again under cProfile and the top functions are printed.

    .venv/bin/python bench/validate.py [--quick] [--profile] [--phases]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import statistics
import sys
import time
from typing import Any, Callable

from pycrdt import Doc, Map, Text

from livecart.crdt.cart import CartDoc, new_line
from livecart.crdt.schema import ROOTS, FieldSpec, Limits, Product
from livecart.crdt.validate import check_line, check_meta

SIZES = (5, 50, 200)
EDITS = ("set qty", "add line", "edit text")
LIMITS = Limits(max_lines=10_000, max_doc_bytes=64 << 20)
PRODUCTS = {
    **{f"sku-{i}": Product(f"sku-{i}", price=100 + i, max_qty=50) for i in range(20)},
    "ring": Product("ring", price=9900, max_qty=50,
                    personalisation={"engraving": FieldSpec("text", max_length=40)}),
}
PLAIN_SKUS = sorted(k for k, p in PRODUCTS.items() if not p.personalisation)


def catalog(sku: str) -> Product | None:
    return PRODUCTS.get(sku)


class Author:
    """A client doc whose per-transaction updates are captured."""

    def __init__(self, seed: int) -> None:
        self.doc = Doc(client_id=1_000 + seed)
        self.lines = self.doc.get("lines", type=Map)
        self.meta = self.doc.get("meta", type=Map)
        self.updates: list[bytes] = []
        self._sub = self.doc.observe(lambda e: self.updates.append(e.update))
        self.n = 0

    def edit(self, change: Callable[[], Any]) -> bytes:
        before = len(self.updates)
        with self.doc.transaction():
            change()
        assert len(self.updates) == before + 1
        return self.updates[-1]

    def add_line(self, rng: random.Random) -> None:
        self.n += 1
        if rng.random() < 0.3:
            line = new_line("ring", 1, "cust-1", "web", 1_700_000_000_000 + self.n, {"engraving": "Happy day"})
        else:
            line = new_line(rng.choice(PLAIN_SKUS), rng.randint(1, 5), "cust-1", "web", 1_700_000_000_000 + self.n)
        self.lines[f"line-{self.n:05d}"] = line


def make_case(n_lines: int, edit: str, count: int, seed: int = 1) -> tuple[bytes, list[bytes]]:
    """A base snapshot with `n_lines` lines (plus server fields) and `count` consecutive updates."""
    rng = random.Random(seed)
    author = Author(seed)
    with author.doc.transaction():
        for _ in range(n_lines):
            author.add_line(rng)
        author.meta["note"] = "ring the bell"
    server = CartDoc(author.doc.get_update())
    server.write(lambda c: (c.server.__setitem__("status", "open"),
                            c.server.__setitem__("holds", Map({k: Map({"status": "held", "qty": 1})
                                                                for k in list(c.lines.keys())}))))
    base = server.compact()
    author.doc.apply_update(base)
    line_ids = sorted(author.lines.keys())
    rings = [k for k in line_ids if author.lines[k]["sku"] == "ring"]
    if edit == "edit text" and not rings:
        raise RuntimeError("no personalised line")
    updates = []
    for _ in range(count):
        if edit == "set qty":
            line = author.lines[rng.choice(line_ids)]
            updates.append(author.edit(lambda: line.__setitem__("qty", rng.randint(1, 50))))
        elif edit == "add line":
            updates.append(author.edit(lambda: author.add_line(rng)))
        else:
            text: Text = author.lines[rng.choice(rings)]["personalisation"]["engraving"]
            size = len(str(text))

            def type_or_delete() -> None:
                if size < 20 and (size < 3 or rng.random() < 0.6):
                    text.insert(rng.randint(0, size), rng.choice("abcdefghij "))
                else:
                    del text[rng.randrange(size)]
            updates.append(author.edit(type_or_delete))
    return base, updates


# -- the three ways -------------------------------------------------------------


def run_apply(base: bytes, updates: list[bytes]) -> float:
    doc = Doc()
    doc.apply_update(base)
    t0 = time.perf_counter()
    for u in updates:
        doc.apply_update(u)
    return time.perf_counter() - t0


def run_cart(base: bytes, updates: list[bytes]) -> float:
    cart = CartDoc(base)
    t0 = time.perf_counter()
    for u in updates:
        verdict = cart.apply_client_update(u, catalog, LIMITS)
        if not verdict.ok:
            raise AssertionError(f"bench update rejected: {verdict}")
    return time.perf_counter() - t0


def naive_check(scratch: Doc, server_before: Any) -> bool:
    if set(scratch.keys()) - ROOTS:
        return False
    lines = scratch.get("lines", type=Map)
    meta = scratch.get("meta", type=Map)
    with scratch.transaction():
        if scratch.get("server", type=Map).to_py() != server_before:
            return False
        if len(lines) > LIMITS.max_lines:
            return False
        for line_id, line in lines.items():
            if check_line(line_id, line, catalog, LIMITS):
                return False
        for key in meta.keys():
            if check_meta(key, meta.get(key), LIMITS):
                return False
    return True


def run_naive(base: bytes, updates: list[bytes]) -> float:
    live = Doc()
    live.apply_update(base)
    server_before = live.get("server", type=Map).to_py()
    t0 = time.perf_counter()
    for u in updates:
        scratch = Doc()
        scratch.apply_update(live.get_update())
        scratch.apply_update(u)
        if not naive_check(scratch, server_before):
            raise AssertionError("naive check rejected a valid update")
        if len(scratch.get_update()) > LIMITS.max_doc_bytes:
            raise AssertionError("too large")
        live.apply_update(u)
    return time.perf_counter() - t0


WAYS = {"apply": run_apply, "cart": run_cart, "naive": run_naive}


def measure(way: str, base: bytes, updates: list[bytes], rounds: int) -> float:
    """Best of `rounds` (each on a fresh doc), in µs per update."""
    times = [WAYS[way](base, updates) for _ in range(rounds)]
    return min(times) / len(updates) * 1e6


def profile_cart(base: bytes, updates: list[bytes], top: int = 14) -> str:
    prof = cProfile.Profile()
    cart = CartDoc(base)
    prof.enable()
    for u in updates:
        cart.apply_client_update(u, catalog, LIMITS)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def phases(base: bytes, updates: list[bytes]) -> dict[str, float]:
    """µs per update spent in each step of apply_client_update (reaches into CartDoc internals)."""
    from livecart.crdt.updates import missing_dependencies, read_shape, read_state_vector
    from livecart.crdt.validate import judge

    cart = CartDoc(base)
    roots, doc = cart._roots, cart.doc
    spent = dict.fromkeys(("read_shape", "apply+observers", "state vector", "judge"), 0.0)
    for u in updates:
        t0 = time.perf_counter()
        shape = read_shape(u)
        t1 = time.perf_counter()
        roots.touches.reset()
        roots.touches.armed = True
        doc.apply_update(u)
        roots.touches.armed = False
        t2 = time.perf_counter()
        missing_dependencies(shape, read_state_vector(doc.get_state()))
        t3 = time.perf_counter()
        judge(roots, shape, {}, catalog, LIMITS)
        t4 = time.perf_counter()
        for key, dt in zip(spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            spent[key] += dt
    return {k: v / len(updates) * 1e6 for k, v in spent.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer updates and rounds")
    ap.add_argument("--profile", action="store_true", help="always profile the costliest validator case")
    ap.add_argument("--phases", action="store_true", help="split the validator's cost into its steps")
    args = ap.parse_args()
    count, rounds = (60, 2) if args.quick else (300, 5)
    started = time.perf_counter()
    results: dict[tuple[int, str], dict[str, float]] = {}
    cases: dict[tuple[int, str], tuple[bytes, list[bytes]]] = {}
    for n in SIZES:
        for edit in EDITS:
            print(f"[{time.perf_counter() - started:5.1f}s] {n} lines, {edit} ...", file=sys.stderr, flush=True)
            base, updates = make_case(n, edit, count)
            cases[(n, edit)] = (base, updates)
            naive_updates = updates[: count // 5]
            results[(n, edit)] = {
                "apply": measure("apply", base, updates, rounds),
                "cart": measure("cart", base, updates, rounds),
                "naive": measure("naive", base, naive_updates, max(2, rounds // 2)),
                "bytes": statistics.mean(map(len, updates)),
            }

    head = f"{'lines':>5}  {'edit':<10} {'upd B':>6} {'apply µs':>9} {'cart µs':>9} {'naive µs':>10}  " \
           f"{'cart/apply':>10} {'naive/cart':>10}"
    print(head)
    print("-" * len(head))
    for (n, edit), r in results.items():
        print(f"{n:>5}  {edit:<10} {r['bytes']:>6.0f} {r['apply']:>9.1f} {r['cart']:>9.1f} {r['naive']:>10.1f}  "
              f"{r['cart'] / r['apply']:>9.1f}x {r['naive'] / r['cart']:>9.1f}x")
    print(f"\n{count} consecutive updates per case, best of {rounds} rounds (naive: the first {count // 5}); "
          f"total {time.perf_counter() - started:.1f}s")

    if args.phases:
        print(f"\nsteps of apply_client_update at {SIZES[-1]} lines, µs per update:")
        for edit in EDITS:
            spent = phases(*cases[(SIZES[-1], edit)])
            print(f"  {edit:<10} " + "  ".join(f"{k} {v:.1f}" for k, v in spent.items()))

    worst = max(results, key=lambda k: results[k]["cart"])
    if args.profile or results[worst]["cart"] > 100:
        n, edit = worst
        print(f"\ncProfile of CartDoc.apply_client_update, {n} lines, {edit} "
              f"({results[worst]['cart']:.0f} µs/update), top functions by own time:")
        print(profile_cart(*cases[worst]))


if __name__ == "__main__":
    main()
