"""Server-side money: line totals, subtotal, discounts and total in integer minor units."""
from __future__ import annotations

from typing import Any, Callable, Iterable

from .schema import Catalog

DiscountLookup = Callable[[str], "dict[str, int] | None"]  # code -> {"percentOff"} or {"amountOff"}


def discount_amount(rule: dict[str, int], subtotal: int) -> int:
    if "percentOff" in rule:
        return subtotal * max(0, min(100, int(rule["percentOff"]))) // 100
    return max(0, int(rule.get("amountOff", 0)))


def price_cart(lines: dict[str, dict[str, Any]], holds: dict[str, dict[str, Any]],
               catalog: Catalog, default_currency: str = "EUR",
               offers: dict[str, dict[str, int]] | None = None,
               typed_codes: Iterable[str] = (), shop_codes: DiscountLookup = lambda code: None) -> dict[str, Any]:
    """Prices what is held (what could be bought now), from the catalog, never from the client.

    A cart has one currency, that of its first priced line; a line in another
    currency is listed with an error and left out of the total. Discounts: codes
    staff offered this cart apply at once; codes the shopper typed apply when the
    shop knows them (or they were offered); each code once; the total never goes
    below zero.
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
    applied: list[dict[str, Any]] = []
    rules: dict[str, dict[str, int]] = dict(offers or {})
    for code in typed_codes:
        rule = (offers or {}).get(code) or shop_codes(code)
        if rule is not None:
            rules.setdefault(code, rule)
    remaining = subtotal
    for code, rule in rules.items():
        amount = min(remaining, discount_amount(rule, subtotal))
        remaining -= amount
        applied.append({"code": code, **rule, "amount": amount})
    return {"currency": currency or default_currency, "lines": priced, "subtotal": subtotal,
            "discounts": applied, "total": remaining}
