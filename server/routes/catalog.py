"""The catalog over HTTP: products with their availability, and an admin's product edits."""
from __future__ import annotations

from aiohttp import web

from ..catalog import product_from_json, product_to_json
from ...crdt.schema import MAX_ITEMS, MAX_TEXT
from ..errors import json_body
from ..guard import SHOP_ADMIN
from ..openapi import COUNT, NON_EMPTY, PRICE, QTY, STRING, api, integer, obj, string
from ..services import SERVICES

FIELD = {"type": "object", "properties": {"kind": {"enum": ["text", "list"]}, "maxLength": integer(1, MAX_TEXT),
                                          "maxItems": integer(1, MAX_ITEMS), "required": {"type": "boolean"}}}
PRODUCT = obj(("sku", "name", "price", "currency", "maxQty", "personalisation"), sku=STRING, name=STRING,
              price=PRICE, currency=STRING, maxQty=QTY, personalisation={"type": "object"})
LEVEL = obj(("onHand", "held", "available"), onHand=COUNT, held=COUNT, available=COUNT)


@api.add("PUT", "/api/catalog/{sku}", "Create or replace a product", auth=SHOP_ADMIN, result=PRODUCT,
         body=obj(("name", "price"), name=NON_EMPTY, price=PRICE, currency=string(3, 3), maxQty=QTY,
                  personalisation={"type": ["object", "null"], "additionalProperties": FIELD}))
async def put_product(request: web.Request) -> web.Response:
    product = product_from_json(request.match_info["sku"], await json_body(request))
    await request.app[SERVICES].catalog.put(product)
    return web.json_response(product_to_json(product))


@api.add("GET", "/api/catalog", "Every product with its availability", auth=None,
         result=obj(("products",), products={"type": "array", "items": PRODUCT}))
async def list_products(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    products = services.catalog.all()
    levels = await services.stock.levels([p.sku for p in products])
    return web.json_response({"products": [
        {**product_to_json(p), "available": levels[p.sku].available} for p in products]})
