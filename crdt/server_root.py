"""The document's `server` root, written here and nowhere else: status, holds, pricing, checkout,
offers and mergedInto.

Every write is one transaction and returns its update (b"" when nothing changed). The writes are
described as plain values (`ServerWrite`) and made by one path, `_commit`, through the compiled
layer (`CartDoc.write_plain`); `settle`, the server's write after every stock decision, is the
only one that keeps the cart's plain view of `server` (the others let it be read again).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from pycrdt import Map, merge_updates

from .cart import CartDoc, ServerView, plain
from .pricing import DiscountLookup, price_cart
from .schema import Catalog

HoldEntry = dict[str, Any]  # what `server.holds[lineId]` shows: status, qty, expiresAt, sku
NEW_PRICING: dict[str, Any] = {"currency": "EUR", "lines": {}, "subtotal": 0, "discounts": [], "total": 0}


def no_codes(code: str) -> dict[str, int] | None:
    """A shop that knows no discount codes."""
    return None


@dataclass
class ServerWrite:
    """What one write sets under `server`, as plain values."""

    keys: dict[str, Any] = field(default_factory=dict)  # top-level keys: status, checkout, offers, mergedInto
    holds: dict[str, HoldEntry | None] = field(default_factory=dict)  # entries to set (None: remove)
    pricing: dict[str, Any] = field(default_factory=dict)  # pricing keys but `lines`
    lines_gone: list[str] = field(default_factory=list)  # pricing.lines entries to remove
    lines: dict[str, Any] = field(default_factory=dict)  # pricing.lines entries to set

    @property
    def count(self) -> int:
        return len(self.keys) + len(self.holds) + len(self.pricing) + len(self.lines_gone) + len(self.lines)

    def reprice(self, old: Mapping[str, Any], new: dict[str, Any]) -> None:
        """Adds what changes `server.pricing` from `old` to `new`: a qty change costs one line
        entry and the totals, not the whole (cart-sized) object."""
        old_lines: Mapping[str, Any] = old.get("lines") or {}
        self.pricing.update({k: v for k, v in new.items() if k != "lines" and old.get(k) != v})
        self.lines_gone.extend(k for k in old_lines if k not in new["lines"])
        self.lines.update({k: v for k, v in new["lines"].items() if old_lines.get(k) != v})


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
           shop_codes: DiscountLookup = no_codes) -> bytes:
    """Writes hold outcomes (None drops the entry of a removed line; an entry keeps the sku it had)
    and the pricing they lead to, in one transaction: the server's write after every stock decision.
    No decisions: just reprice (codes typed, offers made, another process's holds)."""
    created, view = _view(cart)
    holds = dict(view.holds)
    write = ServerWrite()
    for line_id, decision in decisions.items():
        old = holds.get(line_id)
        if decision is None:
            if old is not None:
                del holds[line_id]
                write.holds[line_id] = None
            continue
        entry = {**old, **decision} if old is not None else decision
        if old != entry:
            holds[line_id] = write.holds[line_id] = entry
    pricing = _price(cart, view, holds, catalog, shop_codes)
    write.reprice(view.pricing, pricing)
    update = _commit(cart, view, write, keep_view=True)
    if update:
        view.holds, view.pricing = holds, pricing
    return merge_updates(created, update) if created and update else created or update


def reprice(cart: CartDoc, catalog: Catalog, shop_codes: DiscountLookup = no_codes) -> bytes:
    """Recomputes `server.pricing` (never from client data); writes only what changed."""
    return settle(cart, {}, catalog, shop_codes)


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
    return _commit(cart, None, ServerWrite(keys={"offers": {**offers, code: rule}}))


def checkout_step(cart: CartDoc, step: str, at_ms: int) -> bytes:
    """The checkout step a shopper reached (kept across visits and devices)."""
    return _commit(cart, None, ServerWrite(keys={
        "checkout": {"state": "in_progress", "step": step, "orderId": None, "updatedAt": at_ms}}))


def freeze(cart: CartDoc, order_id: str, pricing: dict[str, Any], at_ms: int) -> bytes:
    """Checking out: the cart takes no more edits, shows the order's pricing and awaits payment."""
    created, view = _view(cart)
    write = ServerWrite(keys={"status": "checking_out"})
    write.reprice(view.pricing, pricing)
    write.keys["checkout"] = {"state": "awaiting_payment", "step": "payment", "orderId": order_id, "updatedAt": at_ms}
    update = _commit(cart, view, write)
    return merge_updates(created, update) if created and update else created or update


def payment_outcome(cart: CartDoc, order_state: str, sold: Iterable[tuple[str, int]] | None) -> bytes:
    """The payment of the order the cart awaits: `sold` (line id, qty) when it was paid (the cart is
    ordered, those lines show `sold`), None when it failed (the cart is open again)."""
    view = cart.server_view()
    with cart.doc.transaction():
        checkout = plain(cart.server.get("checkout") or {})
    write = ServerWrite(keys={"status": "ordered" if sold is not None else "open",
                              "checkout": {**checkout, "state": order_state}})
    if sold is not None and view is not None:
        write.holds.update({line_id: {"status": "sold", "qty": qty, "expiresAt": None} for line_id, qty in sold})
    return _commit(cart, view, write)


def close(cart: CartDoc) -> bytes:
    """The cart's order was cancelled: it takes no more clients."""
    return _commit(cart, None, ServerWrite(keys={"status": "closed"}))


def mark_merged(cart: CartDoc, target_id: str) -> bytes:
    """The cart went into `target_id`: it takes no more edits, and its clients are sent there."""
    return _commit(cart, None, ServerWrite(keys={"status": "merged", "mergedInto": target_id}))


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


def _commit(cart: CartDoc, view: ServerView | None, write: ServerWrite, keep_view: bool = False) -> bytes:
    """Makes `write` in one transaction of plain values (`view`: its maps, needed only when it
    writes holds or pricing). `keep_view`: the caller brings the view up to date itself."""
    if not write.count:
        return b""
    server = cart.server.integrated
    maps = (view.holds_map.integrated, view.pricing_map.integrated, view.pricing_lines.integrated) if view else None

    def change(txn: Any) -> None:
        for key, value in write.keys.items():
            server.insert(txn, key, value)
        if maps is None:
            return
        holds, pricing, lines = maps
        for line_id, entry in write.holds.items():
            if entry is None:
                holds.remove(txn, line_id)
            else:
                holds.insert(txn, line_id, entry)
        for key, value in write.pricing.items():
            pricing.insert(txn, key, value)
        for line_id in write.lines_gone:
            lines.remove(txn, line_id)
        for line_id, value in write.lines.items():
            lines.insert(txn, line_id, value)
    return cart.write_plain(change, write.count, keep_view)


__all__ = [
    "HoldEntry", "ServerWrite", "checkout_step", "close", "compute_pricing", "freeze", "init", "mark_merged",
    "no_codes", "offer", "payment_outcome", "reprice", "settle",
]
