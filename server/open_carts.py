"""Open carts for the shop floor: every open cart with a summary, for `/admin` on load."""
from __future__ import annotations

from typing import Any

from ..crdt import CartDoc
from ..crdt.cart import plain
from .store import CartRecord, Store

MAX_OPEN_CARTS = 500  # the newest; a shop floor shows what is happening now
LIVE = ("open", "checking_out")  # a cart that became an order (or merged, or closed) leaves the board


def summary(record: CartRecord, cart: CartDoc) -> dict[str, Any]:
    data = cart.to_dict()
    lines = list(data["lines"].values())
    pricing = data.get("pricing") or {}
    details = data["meta"].get("details") or {}
    return {**record.to_json(), "status": data["status"], "lines": len(lines),
            "items": sum(int(line.get("qty") or 0) for line in lines),
            "skus": sorted({str(line.get("sku")) for line in lines}),
            "lineItems": {line_id: {"sku": line.get("sku"), "qty": line.get("qty")} for line_id, line in data["lines"].items()},
            "total": pricing.get("total", 0), "currency": pricing.get("currency", "EUR"),
            "step": (data.get("checkout") or {}).get("step"), "name": details.get("name") or None,
            "updatedAt": (data.get("checkout") or {}).get("updatedAt")}


async def open_carts(store: Store, live_docs: dict[str, CartDoc]) -> list[dict[str, Any]]:
    """Open carts, newest first: from a loaded room's doc when there is one, else from the store."""
    closed = await store.list_records("cart-closed")
    records = [r for r in await store.list_carts() if r.id not in closed][-MAX_OPEN_CARTS:]
    out = []
    for record in reversed(records):
        cart = live_docs.get(record.id)
        if cart is None:
            stored = await store.load(record.id)
            cart = CartDoc(stored.snapshot, stored.updates)
        if (plain(cart.server.get("status")) or "open") in LIVE:
            out.append(summary(record, cart))
    return out
