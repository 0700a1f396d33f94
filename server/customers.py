"""Customers on every channel: profile, favourites, order history, and suggestions from real orders."""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from .access import record_lookup
from .auth import Identity
from .catalog import CatalogCache
from .refusals import NotFound
from .stock import StockAuthority
from .sync.registry import Rooms
from .store import CartRecord, Store
from .store.index import ShopIndex, customer_json

RECENT_ORDERS = 5
SUGGESTIONS = 6


def suggest(own: set[str], favourites: Iterable[str], baskets: Iterable[set[str]],
            in_stock: list[str], limit: int = SUGGESTIONS) -> list[str]:
    """What customers who bought or liked the same things also bought (co-occurrence in
    orders), then the best sellers, then what is in stock; never what they have already."""
    seeds = own | set(favourites)
    together: Counter[str] = Counter()
    sellers: Counter[str] = Counter()
    for basket in baskets:
        sellers.update(basket)
        if basket & seeds:
            together.update(basket - seeds)
    ranked = [sku for sku, _ in together.most_common()]
    ranked += [sku for sku, _ in sellers.most_common() if sku not in together]
    ranked += in_stock
    out: list[str] = []
    for sku in ranked:
        if sku not in seeds and sku not in out and sku in in_stock:
            out.append(sku)
        if len(out) == limit:
            break
    return out


async def orders_of(store: Store, customer_id: str) -> list[dict[str, Any]]:
    """The customer's orders, newest first (the index key sorts by creation time)."""
    index = await store.list_records("customer-order", f"{customer_id}|")
    orders = [await store.get_record("order", entry["orderId"]) for entry in reversed(list(index.values()))]
    return [o for o in orders if o is not None]


class Customers:
    """What the shop knows of a customer, for whoever may see it (an operator's look counts as a lookup)."""

    def __init__(self, store: Store, catalog: CatalogCache, stock: StockAuthority, rooms: Rooms,
                 index: ShopIndex) -> None:
        self.store, self.catalog, self.stock, self.rooms, self.index = store, catalog, stock, rooms, index

    async def profile(self, who: Identity, customer_id: str) -> dict[str, Any]:
        """Favourites, recent orders, suggestions and carts."""
        store = self.store
        await record_lookup(store, who, customer_id)
        favourites = (await store.get_record("profile", customer_id) or {}).get("favourites", [])
        orders = await orders_of(store, customer_id)
        carts = await store.list_carts(customer_id)
        # What is in the customer's open carts is never suggested (and suggests what goes with it).
        own = {line["sku"] for o in orders for line in o.get("lines", [])} | await self._skus_in_open_carts(carts)
        baskets = [{line["sku"] for line in o.get("lines", [])} for o in (await store.list_records("order")).values()]
        products = self.catalog.all()
        levels = await self.stock.levels([p.sku for p in products])
        in_stock = [p.sku for p in products if levels[p.sku].available > 0]
        record = await self.index.get_customer(customer_id) or customer_json({"id": customer_id})
        return {**record, "id": customer_id, "favourites": favourites, "recentOrders": orders[:RECENT_ORDERS],
                "suggestions": suggest(own, favourites, baskets, in_stock),
                "carts": [c.to_json() for c in carts]}

    async def _skus_in_open_carts(self, carts: list[CartRecord], newest: int = 3) -> set[str]:
        closed = await self.store.list_records("cart-closed")
        skus: set[str] = set()
        for record in [c for c in carts if c.id not in closed][-newest:]:
            cart, _ = await self.rooms.peek(record.id)
            skus |= {str(line["sku"]) for line in cart.to_dict()["lines"].values()}
        return skus

    async def orders(self, who: Identity, customer_id: str) -> list[dict[str, Any]]:
        """Order history, newest first."""
        await record_lookup(self.store, who, customer_id)
        return await orders_of(self.store, customer_id)

    async def favourite(self, customer_id: str, sku: str, add: bool) -> list[str]:
        """Adds or removes a favourite; returns the favourites (the newest 200)."""
        if add and self.catalog.get(sku) is None:
            raise NotFound("no_product", f"no product {sku}")
        profile = await self.store.get_record("profile", customer_id) or {}
        favourites = [s for s in profile.get("favourites", []) if s != sku] + ([sku] if add else [])
        await self.store.put_record("profile", customer_id, {**profile, "favourites": favourites[-200:]})
        return favourites
