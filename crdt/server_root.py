"""The document's `server` root, written here and nowhere else: status, holds, pricing, conflicts,
checkout, offers and mergedInto.

Every write is one transaction and returns its update (b"" when nothing changed). The writes are
plain values (keys of `server`, hold entries, pricing changes) made by one path, `_commit`, through
the compiled layer (`CartDoc.write_plain`); `settle`, the server's write after every stock decision, is the
only one that keeps the cart's plain view of `server` (the others let it be read again).
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from pycrdt import Map, merge_updates

from .cart import CartDoc, ServerView, plain
from .groups import NO_GROUPS, CheckoutGroups, Conflict
from .pricing import DiscountLookup, price_cart
from .schema import Catalog

HoldEntry = dict[str, Any]  # what `server.holds[lineId]` shows: status, qty, expiresAt, sku
NEW_PRICING: dict[str, Any] = {"currency": "EUR", "lines": {}, "subtotal": 0, "discounts": [], "total": 0}


def no_codes(code: str) -> dict[str, int] | None:
    """A shop that knows no discount codes."""
    return None


Holds = dict[str, "HoldEntry | None"]  # hold entries to set (None: remove)


def pricing_changes(old: Mapping[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """What changes `server.pricing` from `old` to `new`: its keys but `lines`, the line entries
    that go, and those set (a qty change costs one line entry and the totals, not the whole
    cart-sized object)."""
    old_lines: Mapping[str, Any] = old.get("lines") or {}
    new_lines = new["lines"]
    return ({k: v for k, v in new.items() if k != "lines" and old.get(k) != v},
            [k for k in old_lines if k not in new_lines],
            {k: v for k, v in new_lines.items() if old_lines.get(k) != v})


NO_PRICING: tuple[dict[str, Any], list[str], dict[str, Any]] = ({}, [], {})


# -- creation -------------------------------------------------------------------------------


def init(cart: CartDoc, currency: str = "EUR") -> bytes:
    """The server root of a new cart (written once, at creation, so no process races to create it)."""
    def change(c: CartDoc) -> None:
        c.server["status"] = "open"
        _make_maps(c)
        pricing = c.server["pricing"]
        for key, value in {**NEW_PRICING, "currency": currency}.items():
            if key != "lines":
                pricing[key] = value
        c.server["checkout"] = {"state": "open", "step": None, "orderId": None}
    return cart.write(change)


def _make_maps(cart: CartDoc) -> None:
    """`server.holds` and `server.pricing.lines` as the maps `ServerWrite` writes into (whatever
    was there instead is replaced)."""
    server = cart.server
    if not isinstance(server.get("holds"), Map):
        server["holds"] = Map()
    pricing = server.get("pricing")
    if not isinstance(pricing, Map):
        server["pricing"] = Map({"lines": Map()})
    elif not isinstance(pricing.get("lines"), Map):
        pricing["lines"] = Map()


# -- holds and pricing ----------------------------------------------------------------------


def settle(cart: CartDoc, decisions: Mapping[str, HoldEntry | None], catalog: Catalog,
           shop_codes: DiscountLookup = no_codes, groups: CheckoutGroups = NO_GROUPS) -> bytes:
    """Writes hold outcomes (None drops the entry of a removed line; an entry keeps the sku it had),
    the pricing they lead to and the lines' checkout-group conflicts, in one transaction: the server's
    write after every stock decision. No decisions: just reprice (codes typed, offers made, another
    process's holds, group rules changed)."""
    view = cart.server_view()
    created = b""
    if view is None:
        created, view = _view(cart)
    holds = dict(view.holds)
    changes: Holds = {}
    for line_id, decision in decisions.items():
        old = holds.get(line_id)
        if decision is None:
            if old is not None:
                del holds[line_id]
                changes[line_id] = None
            continue
        entry = {**old, **decision} if old is not None else decision
        if old != entry:
            holds[line_id] = changes[line_id] = entry
    pricing = _price(cart, view, holds, catalog, shop_codes)
    conflicts = _conflicts(cart, view, holds, catalog, groups)
    keys = {"conflicts": conflicts} if conflicts != view.conflicts else {}
    update = _commit(cart, view, keys, changes, pricing_changes(view.pricing, pricing), keep_view=True)
    if update:
        view.holds, view.pricing, view.conflicts = holds, pricing, conflicts
    return merge_updates(created, update) if created and update else created or update


def reprice(cart: CartDoc, catalog: Catalog, shop_codes: DiscountLookup = no_codes,
            groups: CheckoutGroups = NO_GROUPS) -> bytes:
    """Recomputes `server.pricing` and `server.conflicts` (never from client data); writes only what changed."""
    return settle(cart, {}, catalog, shop_codes, groups)


def conflicts_of(cart: CartDoc, catalog: Catalog, groups: CheckoutGroups) -> list[Conflict]:
    """Which of the cart's lines cannot be checked out together now (what checkout asks, read afresh)."""
    with cart.doc.transaction():
        skus = [(line_id, cart.sku_of(line_id)) for line_id in cart.lines.keys()]
    return groups.conflicts(skus, catalog)


def _conflicts(cart: CartDoc, view: ServerView, holds: dict[str, HoldEntry], catalog: Catalog,
               groups: CheckoutGroups) -> list[Conflict]:
    if not groups.rules:  # the usual shop: nothing to read per edit
        return []
    # Hold entries name their SKU: a line is read only while it has none yet.
    return groups.conflicts([(k, (holds.get(k) or {}).get("sku") or cart.sku_of(k)) for k in view.line_ids],
                            catalog)


def compute_pricing(cart: CartDoc, catalog: Catalog, shop_codes: DiscountLookup = no_codes) -> dict[str, Any]:
    """`server.pricing` as it should be now, from the catalog, holds and valid discounts."""
    view = cart.server_view()
    if view is None:  # never initialised: nothing is held, so nothing is priced
        with cart.doc.transaction():
            offers = plain(cart.server.get("offers") or {})
            codes = [c for c in plain(cart.meta.get("discountCodes") or []) if isinstance(c, str)]
        return price_cart({}, {}, catalog, "EUR", offers, codes, shop_codes)
    return _price(cart, view, view.holds, catalog, shop_codes)


def _price(cart: CartDoc, view: ServerView, holds: dict[str, HoldEntry], catalog: Catalog,
           shop_codes: DiscountLookup) -> dict[str, Any]:
    # Hold entries name their SKU: pricing reads them, not every line (the hot path).
    priced = {k: {"sku": h.get("sku") or cart.sku_of(k)} for k, h in holds.items() if k in view.line_ids}
    return price_cart(priced, holds, catalog, view.pricing.get("currency") or "EUR",
                      view.offers, view.codes, shop_codes)


# -- the cart's life ------------------------------------------------------------------------


def offer(cart: CartDoc, code: str, rule: dict[str, int]) -> bytes:
    """Staff offer this cart a discount (priced by the next `settle`/`reprice`)."""
    with cart.doc.transaction():
        offers = plain(cart.server.get("offers") or {})
    return _commit(cart, None, {"offers": {**offers, code: rule}})


def checkout_step(cart: CartDoc, step: str, at_ms: int) -> bytes:
    """The checkout step a shopper reached (kept across visits and devices)."""
    return _commit(cart, None, {"checkout": {"state": "in_progress", "step": step, "orderId": None, "updatedAt": at_ms}})


def freeze(cart: CartDoc, order_id: str, pricing: dict[str, Any], at_ms: int) -> bytes:
    """Checking out: the cart takes no more edits, shows the order's pricing and awaits payment."""
    created, view = _view(cart)
    keys = {"status": "checking_out",
            "checkout": {"state": "awaiting_payment", "step": "payment", "orderId": order_id, "updatedAt": at_ms}}
    update = _commit(cart, view, keys, {}, pricing_changes(view.pricing, pricing))
    return merge_updates(created, update) if created and update else created or update


def payment_outcome(cart: CartDoc, order_state: str, sold: Iterable[tuple[str, int]] | None) -> bytes:
    """The payment of the order the cart awaits: `sold` (line id, qty) when it was paid (the cart is
    ordered, those lines show `sold`), None when it failed (the cart is open again)."""
    view = cart.server_view()
    with cart.doc.transaction():
        checkout = plain(cart.server.get("checkout") or {})
    keys = {"status": "ordered" if sold is not None else "open", "checkout": {**checkout, "state": order_state}}
    holds: Holds = {}
    if sold is not None and view is not None:
        holds = {line_id: {"status": "sold", "qty": qty, "expiresAt": None} for line_id, qty in sold}
    return _commit(cart, view, keys, holds)


def close(cart: CartDoc) -> bytes:
    """The cart's order was cancelled: it takes no more clients."""
    return _commit(cart, None, {"status": "closed"})


def mark_merged(cart: CartDoc, target_id: str) -> bytes:
    """The cart went into `target_id`: it takes no more edits, and its clients are sent there."""
    return _commit(cart, None, {"status": "merged", "mergedInto": target_id})


# -- the one write path ---------------------------------------------------------------------


def _view(cart: CartDoc) -> tuple[bytes, ServerView]:
    """The server view, with the maps it needs made first in a cart that lacks them (never
    initialised); also the update that made them (b"" in every cart `init` made)."""
    view = cart.server_view()
    if view is not None:
        return b"", view
    created = cart.write(_make_maps)
    view = cart.server_view()
    assert view is not None
    return created, view


def _commit(cart: CartDoc, view: ServerView | None, keys: dict[str, Any], holds: Holds | None = None,
            pricing: tuple[dict[str, Any], list[str], dict[str, Any]] = NO_PRICING, keep_view: bool = False) -> bytes:
    """Writes, in one transaction of plain values: `keys` of `server`, `holds` entries, and the
    `pricing` changes (`pricing_changes`); `view` gives the maps of the last two (needed only when
    they write something). `keep_view`: the caller brings the view up to date itself."""
    top, gone, lines = pricing
    count = len(keys) + len(holds or ()) + len(top) + len(gone) + len(lines)
    if not count:
        return b""
    server = cart.server.integrated if keys else None
    maps = (view.holds_map.integrated, view.pricing_map.integrated, view.pricing_lines.integrated) if view else None

    def change(txn: Any) -> None:
        if server is not None:
            for key, value in keys.items():
                server.insert(txn, key, value)
        if maps is None:
            return
        holds_map, pricing_map, lines_map = maps
        for line_id, entry in (holds or {}).items():
            if entry is None:
                holds_map.remove(txn, line_id)
            else:
                holds_map.insert(txn, line_id, entry)
        for key, value in top.items():
            pricing_map.insert(txn, key, value)
        for line_id in gone:
            lines_map.remove(txn, line_id)
        for line_id, value in lines.items():
            lines_map.insert(txn, line_id, value)
    return cart.write_plain(change, count, keep_view)


__all__ = [
    "HoldEntry", "checkout_step", "close", "compute_pricing", "conflicts_of", "freeze", "init", "mark_merged",
    "no_codes", "pricing_changes", "offer", "payment_outcome", "reprice", "settle",
]
