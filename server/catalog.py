"""The product catalog: kept in memory, written through the store, reloaded when another process changes it."""
from __future__ import annotations

import time
from typing import Any

from ..crdt import FieldSpec, Product
from ..crdt.groups import DEFAULT_GROUP, GroupError, group_name
from ..crdt.schema import MAX_ITEMS, MAX_PRICE, MAX_QTY, MAX_TEXT
from .bus import Bus
from .refusals import Invalid, int_in
from .store import Store


def product_from_json(sku: str, data: dict[str, Any]) -> Product:
    """Checks a catalog entry as the API and import files give it (camelCase JSON)."""
    def fail(message: str) -> Invalid:
        return Invalid("bad_product", f"{sku}: {message}")

    def number(given: dict[str, Any], name: str, default: int | None, low: int, high: int, field: str = "") -> int:
        try:
            return int_in({name: default, **given}, name, low, high, "bad_product")
        except Invalid as exc:
            raise fail(field + exc.message) from None

    name, currency = data.get("name"), data.get("currency", "EUR")
    if not isinstance(name, str) or not name:
        raise fail("name must be a non-empty string")
    price = number(data, "price", None, 0, MAX_PRICE)  # minor units
    if not isinstance(currency, str) or len(currency) != 3:
        raise fail("currency must be a 3-letter code")
    max_qty = number(data, "maxQty", 99, 1, MAX_QTY)
    fields = data.get("personalisation")
    fields = {} if fields is None else fields  # null: none; false, [] or "" are mistakes, not "none"
    if not isinstance(fields, dict):
        raise fail("personalisation must be an object of field specs")
    specs = {}
    for fname, spec in fields.items():
        if not isinstance(spec, dict) or spec.get("kind", "text") not in ("text", "list"):
            raise fail(f"personalisation field {fname!r} needs kind text or list")
        where = f"personalisation field {fname!r}: "
        if not isinstance(spec.get("required", False), bool):
            raise fail(where + "required is true or false")
        specs[fname] = FieldSpec(
            kind=spec.get("kind", "text"), max_length=number(spec, "maxLength", 500, 1, MAX_TEXT, where),
            max_items=number(spec, "maxItems", 200, 1, MAX_ITEMS, where), required=spec.get("required", False))
    try:
        group = group_name(data.get("checkoutGroup") or DEFAULT_GROUP, "checkoutGroup")
    except GroupError as exc:
        raise fail(str(exc)) from None
    category = data.get("category") or ""
    if not isinstance(category, str) or len(category) > 100:
        raise fail("category must be a string of at most 100 characters")
    return Product(sku, name, price, currency.upper(), max_qty, specs, checkout_group=group, category=category.strip())


def product_to_json(p: Product) -> dict[str, Any]:
    return {
        "sku": p.sku, "name": p.name, "price": p.price, "currency": p.currency, "maxQty": p.max_qty,
        "personalisation": {
            name: {"kind": s.kind, "maxLength": s.max_length, "maxItems": s.max_items,
                   "required": s.required}
            for name, s in p.personalisation.items()
        },
        "checkoutGroup": p.checkout_group,
        **({"category": p.category} if p.category else {}),
    }


class CatalogCache:
    """Lookups are synchronous (validation runs per update); writes go to the store first, then
    every process hears of them (bus topic "catalog") and reloads."""

    RELOAD_EVERY = 1.0  # seconds between two reloads forced by an unknown SKU

    def __init__(self, store: Store, bus: Bus) -> None:
        self._store, self._bus = store, bus
        self._products: dict[str, Product] = {}
        self._loaded_at = 0.0

    async def load(self, _event: Any = None) -> None:
        stored = await self._store.list_products()
        self._products = {sku: product_from_json(sku, data) for sku, data in stored.items()}
        self._loaded_at = time.monotonic()

    async def knows(self, sku: str) -> bool:
        """Whether `sku` exists, reloading once (rate-limited) in case another process just added it."""
        if sku in self._products:
            return True
        if time.monotonic() - self._loaded_at >= self.RELOAD_EVERY:
            await self.load()
        return sku in self._products

    def get(self, sku: str) -> Product | None:
        return self._products.get(sku)

    def all(self) -> list[Product]:
        return list(self._products.values())

    async def put(self, product: Product) -> None:
        await self._store.put_product(product.sku, product_to_json(product))
        self._products[product.sku] = product
        self._bus.publish_event("catalog", {"sku": product.sku})
