"""server_root.settle — the server's write after each stock decision — against the general path.

`settle` writes from plain copies of `server` instead of reading the doc, so these tests
hold it to what `set_holds` + `reprice` (below: the reading, pycrdt-level writer it replaced)
in one `write` give, through interleaved client edits, discount codes, offers, checkout-style
writes and rebuilds after rejections.
"""
from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pycrdt import Map

from livecart.crdt import server_root
from livecart.crdt.cart import CartDoc, new_line, plain
from livecart.crdt.pricing import price_cart
from livecart.crdt.updates import read_state_vector
from livecart.crdt.validate import Accepted

from .ytools import LIMITS, Client, Item, catalog, encode_update

PLAIN_SKUS = ["mug", "tee", "pen"]
CODES = {"TEN": {"percentOff": 10}, "FIVE": {"amountOff": 500}}


def shop_codes(code: str) -> dict[str, int] | None:
    return CODES.get(code)


def new_cart() -> CartDoc:
    cart = CartDoc()
    server_root.init(cart)
    return cart


# -- the general path: reads the doc, writes with pycrdt's own API --------------------------------

def set_holds(cart: CartDoc, decisions: dict[str, dict[str, Any] | None]) -> None:
    holds = cart.server.get("holds")
    if not isinstance(holds, Map):
        holds = cart.server["holds"] = Map()
    for line_id, decision in decisions.items():
        if decision is None:
            if line_id in holds:
                del holds[line_id]
            continue
        old = holds.get(line_id)
        entry = {**old, **decision} if isinstance(old, dict) else decision  # keeps the sku
        if old != entry:
            holds[line_id] = entry


def reprice(cart: CartDoc) -> None:
    holds_map = cart.server.get("holds")
    holds = plain(holds_map) if isinstance(holds_map, Map) else {}
    lines = {k: {"sku": h.get("sku") or cart.sku_of(k)} for k, h in holds.items() if k in cart.lines}
    currency = (cart.server.get("pricing") or {}).get("currency", "EUR")
    offers = plain(cart.server.get("offers") or {})
    typed = [c for c in plain(cart.meta.get("discountCodes") or []) if isinstance(c, str)]
    pricing = price_cart(lines, holds, catalog, currency, offers, typed, shop_codes)
    current = cart.server.get("pricing")
    if not isinstance(current, Map):
        current = cart.server["pricing"] = Map({"lines": Map()})
    priced = current.get("lines")
    if not isinstance(priced, Map):
        priced = current["lines"] = Map()
    for key, value in pricing.items():
        if key != "lines" and plain(current.get(key)) != value:
            current[key] = value
    for line_id in [k for k in priced.keys() if k not in pricing["lines"]]:
        del priced[line_id]
    for line_id, entry in pricing["lines"].items():
        if plain(priced.get(line_id)) != entry:
            priced[line_id] = entry


def general(cart: CartDoc, decisions: dict[str, dict[str, Any] | None]) -> bytes:
    return cart.write(lambda c: (set_holds(c, decisions), reprice(c)))


def server_of(cart: CartDoc) -> dict[str, Any]:
    with cart.doc.transaction():
        return plain(cart.server)


def decision(qty: int, sku: str) -> dict[str, Any]:
    return {"status": "held" if qty else "unavailable", "qty": qty, "expiresAt": 1_700_000_000_000 + qty, "sku": sku}


steps = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(0, 4), st.sampled_from(PLAIN_SKUS), st.integers(1, 5)),
    st.tuples(st.just("qty"), st.integers(0, 4), st.integers(1, 5)),
    st.tuples(st.just("remove"), st.integers(0, 4)),
    st.tuples(st.just("hold"), st.integers(0, 4), st.integers(0, 5)),
    st.tuples(st.just("codes"), st.lists(st.sampled_from(["TEN", "FIVE", "NOPE"]), max_size=2)),
    st.tuples(st.just("offer"), st.sampled_from(["TEN", "FIVE"])),
    st.tuples(st.just("reject"),),
), min_size=1, max_size=25)


@settings(max_examples=100, deadline=None)
@given(steps)
def test_settle_writes_what_the_general_path_writes(script: list[tuple[Any, ...]]) -> None:
    fast, slow = new_cart(), new_cart()
    author = Client(7)
    author.doc.apply_update(fast.diff())
    for step in script:
        kind, *args = step
        update = None
        if kind == "add":
            line_id, sku, qty = f"L{args[0]}", args[1], args[2]
            update = author.edit(lambda c: c.lines.__setitem__(line_id, new_line(sku, qty, "cust", "web", 1)))
        elif kind == "qty" and f"L{args[0]}" in author.lines:
            update = author.edit(lambda c: c.lines[f"L{args[0]}"].__setitem__("qty", args[1]))
        elif kind == "remove" and f"L{args[0]}" in author.lines:
            update = author.edit(lambda c: c.lines.pop(f"L{args[0]}"))
        elif kind == "codes":
            update = author.edit(lambda c: c.meta.__setitem__("discountCodes", _array(args[0])))
        elif kind == "reject":  # a rejected client update rebuilds the doc (and drops the view)
            bad = author.edit(lambda c: c.server.__setitem__("status", "hacked"))
            assert fast.apply_client_update(bad, catalog, LIMITS).ok is False
            assert slow.apply_client_update(bad, catalog, LIMITS).ok is False
            author = Client(7)
            author.doc.apply_update(fast.diff())
        if update is not None:
            assert fast.apply_client_update(update, catalog, LIMITS).ok
            assert slow.apply_client_update(update, catalog, LIMITS).ok
        if kind == "hold":
            line_id = f"L{args[0]}"
            line = author.lines.get(line_id)
            sku = line["sku"] if line is not None else "mug"
            decisions = {line_id: decision(args[1], sku) if line is not None else None}
            up_fast, up_slow = server_root.settle(fast, decisions, catalog, shop_codes), general(slow, decisions)
            assert bool(up_fast) == bool(up_slow)
            author.doc.apply_update(fast.diff(author.doc.get_state()))
        elif kind == "offer":  # any other server write goes through `write` and must drop the view
            offer = CODES[args[0]]
            for c in (fast, slow):
                c.write(lambda c: c.server.__setitem__("offers", {args[0]: offer}))
        assert server_of(fast)["pricing"] == server_of(slow)["pricing"] or kind != "hold"
    # Whatever came last, one more settle brings both to the same server state.
    server_root.settle(fast, {}, catalog, shop_codes)
    general(slow, {})
    assert server_of(fast) == server_of(slow)
    assert server_of(CartDoc(fast.compact())) == server_of(slow)


def _array(codes: list[str]) -> Any:
    from pycrdt import Array
    return Array(codes)


def test_settle_writes_nothing_when_nothing_changes() -> None:
    cart = new_cart()
    author = Client(9)
    author.doc.apply_update(cart.diff())
    assert cart.apply_client_update(
        author.edit(lambda c: c.lines.__setitem__("L1", new_line("mug", 2, "cust", "web", 1))), catalog, LIMITS).ok
    assert server_root.settle(cart, {"L1": decision(2, "mug")}, catalog, shop_codes)
    assert server_root.settle(cart, {"L1": decision(2, "mug")}, catalog, shop_codes) == b""
    assert server_of(cart)["pricing"]["total"] == 2 * 1200


def test_a_client_copy_of_the_servers_latest_write_never_surfaces() -> None:
    """settle does not refresh the validator's state vector: items in the server's own name
    are always trimmed to what is new, so a forged re-send of its clocks stays harmless."""
    cart = new_cart()
    author = Client(11)
    author.doc.apply_update(cart.diff())
    assert cart.apply_client_update(
        author.edit(lambda c: c.lines.__setitem__("L1", new_line("mug", 1, "cust", "web", 1))), catalog, LIMITS).ok
    assert server_root.settle(cart, {"L1": decision(1, "mug")}, catalog, shop_codes)
    sid = cart.doc.client_id
    end = read_state_vector(cart.state())[sid]
    forged = encode_update({sid: (end - 1, [Item(("any", ["ordered"]), parent="server", parent_sub="status")])})
    verdict = cart.apply_client_update(forged, catalog, LIMITS)
    assert cart.to_dict()["status"] == "open"
    if isinstance(verdict, Accepted):
        assert verdict.update in (b"", b"\x00\x00")
        assert CartDoc(cart.compact()).to_dict()["status"] == "open"


def test_codes_typed_and_offers_made_after_the_view_was_read_are_priced() -> None:
    cart = new_cart()
    author = Client(13)
    author.doc.apply_update(cart.diff())
    assert cart.apply_client_update(
        author.edit(lambda c: c.lines.__setitem__("L1", new_line("tee", 2, "cust", "web", 1))), catalog, LIMITS).ok
    server_root.settle(cart, {"L1": decision(2, "tee")}, catalog, shop_codes)
    assert server_of(cart)["pricing"]["total"] == 5000
    assert cart.apply_client_update(
        author.edit(lambda c: c.meta.__setitem__("discountCodes", _array(["TEN"]))), catalog, LIMITS).ok
    assert server_root.settle(cart, {}, catalog, shop_codes)
    assert server_of(cart)["pricing"]["total"] == 4500
    cart.write(lambda c: c.server.__setitem__("offers", {"FIVE": {"amountOff": 500}}))
    assert server_root.settle(cart, {}, catalog, shop_codes)
    assert server_of(cart)["pricing"]["total"] == 4000  # 5000 - 500 offered - 10% typed


def test_a_removed_line_is_not_priced_while_its_hold_is_still_being_released() -> None:
    cart = new_cart()
    author = Client(17)
    author.doc.apply_update(cart.diff())
    for line_id, sku in (("L1", "mug"), ("L2", "tee")):
        assert cart.apply_client_update(
            author.edit(lambda c: c.lines.__setitem__(line_id, new_line(sku, 1, "cust", "web", 1))), catalog, LIMITS).ok
    server_root.settle(cart, {"L1": decision(1, "mug"), "L2": decision(1, "tee")}, catalog, shop_codes)
    assert cart.apply_client_update(author.edit(lambda c: c.lines.pop("L1")), catalog, LIMITS).ok
    server_root.settle(cart, {"L2": decision(2, "tee")}, catalog, shop_codes)  # L1's release has not come back yet
    pricing = server_of(cart)["pricing"]
    assert set(pricing["lines"]) == {"L2"} and pricing["total"] == 2 * 2500
