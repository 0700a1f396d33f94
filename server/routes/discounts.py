"""Discounts over HTTP: an admin defines shop-wide codes, or offers a discount into one cart, live."""
from __future__ import annotations

from aiohttp import web

from ..discounts import code_from_json, rule_from_json
from ..errors import json_body
from ..guard import ADMINS_ONLY, CART_OPENER, Rule, cart
from ..openapi import AMOUNT, STRING, api, integer, obj, string
from ..services import SERVICES

# exactly one of the two; a null is as good as leaving it out (rule_from_json reads them with .get)
DISCOUNT = {"oneOf": [obj(("percentOff",), percentOff=integer(1, 100), amountOff={"type": "null"}),
                      obj(("amountOff",), amountOff=AMOUNT, percentOff={"type": "null"})]}
CART_ADMIN = Rule("admin", CART_OPENER.checks + ADMINS_ONLY.checks)  # a cart that exists, then an admin


@api.add("PUT", "/api/discounts/{code}", "Define a shop-wide code shoppers may type", auth=ADMINS_ONLY,
         body={"type": "object", **DISCOUNT}, result=obj(("code",), code=STRING))
async def put_discount(request: web.Request) -> web.Response:
    rule = rule_from_json(await json_body(request))
    code = await request.app[SERVICES].discounts.define(request.match_info["code"], rule)
    return web.json_response({"code": code, **rule})


@api.add("POST", "/api/carts/{cartId}/discounts", "Offer a discount into a cart, live", auth=CART_ADMIN, ok=201,
         errors=(404, 409), body={**obj(("code",), code=string(1, 64, pattern=r"\S")), **DISCOUNT},
         result=obj(("cartId", "code", "pricing"), cartId=STRING, code=STRING, pricing={"type": "object"}))
async def offer_discount(request: web.Request) -> web.Response:
    body = await json_body(request)
    code, rule = code_from_json(body), rule_from_json(body)
    record = cart(request)
    pricing = await request.app[SERVICES].offers.offer(record, code, rule)
    return web.json_response({"cartId": record.id, "code": code, **rule, "pricing": pricing}, status=201)
