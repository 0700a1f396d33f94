"""Server-side money: line totals, subtotal, discounts and total in integer minor units."""
from __future__ import annotations

from typing import Any

from .schema import Catalog


def price_cart(lines: dict[str, dict[str, Any]], holds: dict[str, dict[str, Any]],
               catalog: Catalog, default_currency: str = "EUR") -> dict[str, Any]:
    """Prices what is held (what could be bought now), from the catalog, never from the client.

    A cart has one currency, that of its first priced line; a line in another
    currency is listed with an error and left out of the total.
    """
    currency: str | None = None
    priced: dict[str, dict[str, Any]] = {}
    subtotal = 0
    for line_id in sorted(lines, key=lambda k: (lines[k].get("addedAt") or 0, k)):
        product = catalog(str(lines[line_id].get("sku")))
        if product is None:
            continue
        qty = int(holds.get(line_id, {}).get("qty", 0))
        currency = currency or product.currency
        entry: dict[str, Any] = {"sku": product.sku, "unitPrice": product.price, "qty": qty,
                                 "total": product.price * qty}
        if product.currency != currency:
            entry.update(total=0, error=f"priced in {product.currency}, cart is in {currency}")
        priced[line_id] = entry
        subtotal += entry["total"]
    return {"currency": currency or default_currency, "lines": priced, "subtotal": subtotal,
            "discounts": [], "total": subtotal}
