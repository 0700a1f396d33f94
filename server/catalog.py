"""The product catalog as validation and pricing see it: kept in memory, written through the store."""
from __future__ import annotations

from typing import Any

from ..crdt import FieldSpec, Product
from .errors import ApiError
from .store import Store


def product_from_json(sku: str, data: dict[str, Any]) -> Product:
    """Checks a catalog entry as the API and import files give it (camelCase JSON)."""
    def fail(message: str) -> ApiError:
        return ApiError(400, "bad_product", f"{sku}: {message}")

    name, price = data.get("name"), data.get("price")
    currency, max_qty = data.get("currency", "EUR"), data.get("maxQty", 99)
    if not isinstance(name, str) or not name:
        raise fail("name must be a non-empty string")
    if not isinstance(price, int) or isinstance(price, bool) or price < 0:
        raise fail("price must be a non-negative integer in minor units")
    if not isinstance(currency, str) or len(currency) != 3:
        raise fail("currency must be a 3-letter code")
    if not isinstance(max_qty, int) or isinstance(max_qty, bool) or not 1 <= max_qty <= 10_000:
        raise fail("maxQty must be an integer in 1..10000")
    fields = data.get("personalisation") or {}
    if not isinstance(fields, dict):
        raise fail("personalisation must be an object of field specs")
    specs = {}
    for fname, spec in fields.items():
        if not isinstance(spec, dict) or spec.get("kind", "text") not in ("text", "list"):
            raise fail(f"personalisation field {fname!r} needs kind text or list")
        try:
            specs[fname] = FieldSpec(
                kind=spec.get("kind", "text"), max_length=int(spec.get("maxLength", 500)),
                max_items=int(spec.get("maxItems", 200)), required=bool(spec.get("required", False)))
        except (TypeError, ValueError):
            raise fail(f"personalisation field {fname!r} has a bad bound") from None
    return Product(sku, name, price, currency.upper(), max_qty, specs)


def product_to_json(p: Product) -> dict[str, Any]:
    return {
        "sku": p.sku, "name": p.name, "price": p.price, "currency": p.currency, "maxQty": p.max_qty,
        "personalisation": {
            name: {"kind": s.kind, "maxLength": s.max_length, "maxItems": s.max_items,
                   "required": s.required}
            for name, s in p.personalisation.items()
        },
    }


class CatalogCache:
    """Lookups are synchronous (validation runs per update); writes go to the store first."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._products: dict[str, Product] = {}

    async def load(self) -> None:
        stored = await self._store.list_products()
        self._products = {sku: product_from_json(sku, data) for sku, data in stored.items()}

    def get(self, sku: str) -> Product | None:
        return self._products.get(sku)

    def all(self) -> list[Product]:
        return list(self._products.values())

    async def put(self, product: Product) -> None:
        await self._store.put_product(product.sku, product_to_json(product))
        self._products[product.sku] = product
