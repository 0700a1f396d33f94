"""The product catalog (kept in memory, written through the store) and the catalog and stock routes."""
from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..crdt import FieldSpec, Product
from ..crdt.schema import MAX_ITEMS, MAX_PRICE, MAX_QTY, MAX_STOCK, MAX_TEXT
from . import auth
from .appkeys import CATALOG, STOCK
from .errors import ApiError, int_in, json_body
from .feeds import stock_events
from .openapi import COUNT, DELTA, EVENTS, NON_EMPTY, ON_HAND, PRICE, QTY, SSE, STRING, api, integer, obj, param, string
from .stock import Level, StockError
from .store import Store


def product_from_json(sku: str, data: dict[str, Any]) -> Product:
    """Checks a catalog entry as the API and import files give it (camelCase JSON)."""
    def fail(message: str) -> ApiError:
        return ApiError(400, "bad_product", f"{sku}: {message}")

    def number(given: dict[str, Any], name: str, default: int | None, low: int, high: int, field: str = "") -> int:
        try:
            return int_in({name: default, **given}, name, low, high, "bad_product")
        except ApiError as exc:
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
    category = data.get("category") or ""
    if not isinstance(category, str) or len(category) > 100:
        raise fail("category must be a string of at most 100 characters")
    return Product(sku, name, price, currency.upper(), max_qty, specs, category.strip())


def product_to_json(p: Product) -> dict[str, Any]:
    return {
        "sku": p.sku, "name": p.name, "price": p.price, "currency": p.currency, "maxQty": p.max_qty,
        "personalisation": {
            name: {"kind": s.kind, "maxLength": s.max_length, "maxItems": s.max_items,
                   "required": s.required}
            for name, s in p.personalisation.items()
        },
        **({"category": p.category} if p.category else {}),
    }


class CatalogCache:
    """Lookups are synchronous (validation runs per update); writes go to the store first."""

    RELOAD_EVERY = 1.0  # seconds between two reloads forced by an unknown SKU

    def __init__(self, store: Store) -> None:
        self._store = store
        self._products: dict[str, Product] = {}
        self._loaded_at = 0.0
        self.changed: Callable[[str], None] = lambda sku: None  # set by the app: tell other processes

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
        self.changed(product.sku)


# -- HTTP: catalog and stock ------------------------------------------------------------

FIELD = {"type": "object", "properties": {"kind": {"enum": ["text", "list"]}, "maxLength": integer(1, MAX_TEXT),
                                          "maxItems": integer(1, MAX_ITEMS), "required": {"type": "boolean"}}}
PRODUCT = obj(("sku", "name", "price", "currency", "maxQty", "personalisation"), sku=STRING, name=STRING,
              price=PRICE, currency=STRING, maxQty=QTY, personalisation={"type": "object"})
LEVEL = obj(("onHand", "held", "available"), onHand=COUNT, held=COUNT, available=COUNT)
SKUS = param("comma-separated SKUs", string(1, pattern="[^,]"), required=True)


def _admin(request: web.Request) -> None:
    if not auth.bearer(request).is_admin:
        raise ApiError(403, "forbidden", "only an admin may change the catalog or stock")


async def _stock_call(call: Awaitable[Level]) -> web.Response:
    try:
        level = await call
    except StockError as exc:
        raise ApiError(409 if exc.code == "below_held" else 400, exc.code, str(exc)) from None
    return web.json_response(level.to_json())


@api.add("PUT", "/api/catalog/{sku}", "Create or replace a product", auth="admin", result=PRODUCT,
         body=obj(("name", "price"), name=NON_EMPTY, price=PRICE, currency=string(3, 3), maxQty=QTY,
                  personalisation={"type": ["object", "null"], "additionalProperties": FIELD}))
async def put_product(request: web.Request) -> web.Response:
    _admin(request)
    product = product_from_json(request.match_info["sku"], await json_body(request))
    await request.app[CATALOG].put(product)
    return web.json_response(product_to_json(product))


@api.add("GET", "/api/catalog", "Every product with its availability", auth=None,
         result=obj(("products",), products={"type": "array", "items": PRODUCT}))
async def list_products(request: web.Request) -> web.Response:
    products = request.app[CATALOG].all()
    levels = await request.app[STOCK].levels([p.sku for p in products])
    return web.json_response({"products": [
        {**product_to_json(p), "available": levels[p.sku].available} for p in products]})


# `(?!events$)`: the stock feed's own path is not a SKU, so /api/stock/events has only GET (and a 405 says so)
@api.add("PUT", "/api/stock/{sku:(?!events$)[^/]+}", "Set on-hand (never below what carts hold)", auth="admin",
         params={"sku": {**NON_EMPTY, "not": {"const": "events"}}}, body=obj(("onHand",), onHand=ON_HAND),
         errors=(405, 409), result=LEVEL)
async def put_stock(request: web.Request) -> web.Response:
    _admin(request)
    on_hand = int_in(await json_body(request), "onHand", 0, MAX_STOCK, "bad_onHand")
    return await _stock_call(request.app[STOCK].set_on_hand(request.match_info["sku"], on_hand))


@api.add("POST", "/api/stock/{sku}/adjust", "An in-store sale (-) or a delivery (+)", auth="admin",
         body=obj(("delta", "reason"), delta=DELTA, reason=NON_EMPTY), errors=(409,),
         result=LEVEL)
async def adjust_stock(request: web.Request) -> web.Response:
    _admin(request)
    body = await json_body(request)
    delta = int_in(body, "delta", -MAX_STOCK, MAX_STOCK, "bad_delta")
    if not isinstance(body.get("reason"), str) or not body["reason"]:
        raise ApiError(400, "bad_reason", "say why stock changes: reason (e.g. 'in-store sale')")
    sku, stock = request.match_info["sku"], request.app[STOCK]
    # Deliveries never take on-hand past MAX_STOCK (two at once may pass it by one delta, which
    # still leaves every figure far below what JavaScript holds exactly).
    if delta > 0 and (await stock.levels([sku]))[sku].on_hand + delta > MAX_STOCK:
        raise ApiError(400, "bad_delta", f"on-hand may not go past {MAX_STOCK}")
    return await _stock_call(stock.adjust(sku, delta))


@api.add("GET", "/api/stock", "On-hand, held and available per SKU", auth=None,
         query={"skus": SKUS}, result={"type": "object", "additionalProperties": LEVEL})
async def get_stock(request: web.Request) -> web.Response:
    skus = [s for s in request.query.get("skus", "").split(",") if s]
    if not skus:
        raise ApiError(400, "bad_skus", "give ?skus=a,b")
    levels = await request.app[STOCK].levels(skus)
    return web.json_response({sku: level.to_json() for sku, level in levels.items()})


api.add("GET", "/api/stock/events", "Stock feed as Server-Sent Events", auth=None,
        query={"skus": SKUS}, errors=(400,), media=SSE, result=EVENTS)(stock_events)
