"""Customer profiles on every channel: favourites, order history, and suggestions from real orders."""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from aiohttp import web

from ..crdt import CartDoc

from . import auth
from .access import may_see_customer, record_lookup
from .appkeys import CATALOG, INDEX, ROOMS, STOCK, STORE
from .errors import ApiError
from .openapi import STRING, api, obj
from .store import Store
from .store.index import customer_json

SKU_LIST = {"type": "array", "items": STRING}
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


async def _allowed(request: web.Request) -> tuple[auth.Identity, str]:
    who, customer_id = auth.bearer(request), request.match_info["customerId"]
    store = request.app[STORE]
    if not await may_see_customer(store, who, customer_id):
        raise ApiError(403, "forbidden", "not allowed to see this customer")
    await record_lookup(store, who, customer_id)
    return who, customer_id


@api.add("GET", "/api/customers/{customerId}", "Profile: favourites, recent orders, suggestions",
         auth="the customer, an assistant helping them, operator (records a lookup), admin",
         result=obj(("id", "favourites", "recentOrders", "suggestions", "carts"), id=STRING, favourites=SKU_LIST,
                    recentOrders={"type": "array"}, suggestions=SKU_LIST, carts={"type": "array"}))
async def profile(request: web.Request) -> web.Response:
    _, customer_id = await _allowed(request)
    store = request.app[STORE]
    favourites = (await store.get_record("profile", customer_id) or {}).get("favourites", [])
    orders = await orders_of(store, customer_id)
    carts = await store.list_carts(customer_id)
    # What is in the customer's open carts is never suggested (and suggests what goes with it).
    own = {line["sku"] for o in orders for line in o.get("lines", [])} | await _skus_in_open_carts(request, carts)
    baskets = [{line["sku"] for line in o.get("lines", [])} for o in (await store.list_records("order")).values()]
    products = request.app[CATALOG].all()
    levels = await request.app[STOCK].levels([p.sku for p in products])
    in_stock = [p.sku for p in products if levels[p.sku].available > 0]
    record = await request.app[INDEX].get_customer(customer_id) or customer_json({"id": customer_id})
    return web.json_response({
        **record, "id": customer_id, "favourites": favourites, "recentOrders": orders[:RECENT_ORDERS],
        "suggestions": suggest(own, favourites, baskets, in_stock),
        "carts": [c.to_json() for c in carts]})


async def _skus_in_open_carts(request: web.Request, carts: list[Any], newest: int = 3) -> set[str]:
    closed = await request.app[STORE].list_records("cart-closed")
    skus: set[str] = set()
    for record in [c for c in carts if c.id not in closed][-newest:]:
        room = request.app[ROOMS].rooms.get(record.id)
        if room is not None:
            cart = room.cart
        else:
            stored = await request.app[STORE].load(record.id)
            cart = CartDoc(stored.snapshot, stored.updates)
        skus |= {str(line["sku"]) for line in cart.to_dict()["lines"].values()}
    return skus


@api.add("GET", "/api/customers/{customerId}/orders", "Order history, newest first",
         auth="the customer, an assistant helping them, operator (records a lookup), admin",
         result=obj(("orders",), orders={"type": "array"}))
async def orders(request: web.Request) -> web.Response:
    _, customer_id = await _allowed(request)
    return web.json_response({"orders": await orders_of(request.app[STORE], customer_id)})


async def _favourites(request: web.Request, add: bool) -> web.Response:
    who, customer_id = auth.bearer(request), request.match_info["customerId"]
    if not (who.is_admin or (who.role == "customer" and who.sub == customer_id)):
        raise ApiError(403, "forbidden", "only the customer changes their favourites")
    sku = request.match_info["sku"]
    if add and request.app[CATALOG].get(sku) is None:
        raise ApiError(404, "no_product", f"no product {sku}")
    store = request.app[STORE]
    profile = await store.get_record("profile", customer_id) or {}
    favourites = [s for s in profile.get("favourites", []) if s != sku] + ([sku] if add else [])
    await store.put_record("profile", customer_id, {**profile, "favourites": favourites[-200:]})
    return web.json_response({"favourites": favourites})


@api.add("PUT", "/api/customers/{customerId}/favourites/{sku}", "Add a favourite", auth="the customer, admin",
         errors=(404,), result=obj(("favourites",), favourites=SKU_LIST))
async def add_favourite(request: web.Request) -> web.Response:
    return await _favourites(request, add=True)


@api.add("DELETE", "/api/customers/{customerId}/favourites/{sku}", "Remove a favourite",
         auth="the customer, admin", result=obj(("favourites",), favourites=SKU_LIST))
async def remove_favourite(request: web.Request) -> web.Response:
    return await _favourites(request, add=False)
