"""Carts over HTTP: create, read, list, line edits, merging one cart into another, and claiming an anonymous shopper's carts."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from ...crdt.schema import MAX_QTY
from .. import auth
from ..carts import CHANNELS, ROLE_CHANNEL, Personalisation
from ..errors import ApiError, json_body
from ..guard import CART_OPENER, Rule, caller, cart, lists_owner, role, signed_in_customer
from ..openapi import INTEGER, NON_EMPTY, QTY, STRING, api, obj, param
from ..refusals import Forbidden, int_in
from ..services import SERVICES
from ..open_carts import open_carts

CART_MAKER = Rule("customer (own), assistant (a walk-in cart), operator and admin (for `owner`, which they must give)",
                  (role("customer", "assistant", "operator", "admin",
                        message="a kiosk gets its cart by signing a customer in"),))
async def lists_carts(request: web.Request, who: auth.Identity) -> None:
    """`?status=open`, the shop floor's carts, is an admin's; otherwise the carts of `?owner=`."""
    if "status" in request.query:
        if not who.is_admin:
            raise Forbidden("forbidden", "the shop floor's carts are for admins")
    else:
        await lists_owner(request, who)


OWNER_LISTING = Rule("the owner, operator (records a lookup), admin; ?status=open: admin", (lists_carts,))
BOTH_CARTS = Rule("whoever may open both carts", CART_OPENER.checks)  # the target: Merging.merge_into
CART_READER = Rule("whoever may open it", CART_OPENER.checks)
CLAIMANT = Rule("customer (signed in)", (signed_in_customer,))


@api.add("POST", "/api/carts", "Create a cart", ok=201, result=obj(("cartId", "owner"), cartId=STRING, owner=STRING),
         auth=CART_MAKER, body=obj(channel={"enum": list(CHANNELS)}, owner=NON_EMPTY))
async def create_cart(request: web.Request) -> web.Response:
    who = caller(request)
    body = await json_body(request)
    channel = body.get("channel", ROLE_CHANNEL.get(who.role, "web"))
    if channel not in CHANNELS:
        raise ApiError(400, "bad_channel", f"channel must be one of {', '.join(CHANNELS)}")
    owner = body.get("owner")
    if "owner" in body and (not isinstance(owner, str) or not owner):
        raise ApiError(400, "bad_owner", "owner is a customer id (a non-empty string)")
    record = await request.app[SERVICES].carts.create_for(who, channel, owner)
    return web.json_response({"cartId": record.id, "owner": record.owner}, status=201)


@api.add("GET", "/api/carts/{cartId}", "The cart as JSON", auth=CART_READER, errors=(404,),
         result=obj(("id", "owner", "channel", "createdAt", "lines", "status"), id=STRING, owner=STRING,
                    channel=STRING, createdAt=INTEGER, lines={"type": "object"}, status=STRING))
async def get_cart(request: web.Request) -> web.Response:
    return web.json_response(await request.app[SERVICES].carts.view(cart(request)))


@api.add("GET", "/api/carts", "Carts of an owner; or (admin, ?status=open) every open cart with a summary",
         auth=OWNER_LISTING,
         query={"owner": "customer id (defaults to the caller)",
                "status": param("open: the shop floor's carts", {"enum": ["open"]})},
         result=obj(("carts",), carts={"type": "array", "items": obj(("id", "owner", "status"), id=STRING,
                                                                     owner=STRING, status=STRING)}))
async def list_carts(request: web.Request) -> web.Response:
    who = caller(request)
    if "status" in request.query:
        if request.query["status"] != "open":
            raise ApiError(400, "bad_status", "status=open is the one filter")
        services = request.app[SERVICES]
        docs = {cart_id: room.cart for cart_id, room in services.rooms.rooms.items()}
        return web.json_response({"carts": await open_carts(services.store, docs)})
    carts = await request.app[SERVICES].carts.list_of(who, request.query.get("owner", who.sub))
    return web.json_response({"carts": carts})


# -- line edits over HTTP (for clients without Yjs) ------------------------------------------------

@api.add("POST", "/api/carts/{cartId}/lines", "Add a line (reaches live clients like any edit)", ok=201,
         auth=CART_OPENER, errors=(404, 409),
         body=obj(("sku", "qty"), sku=STRING, qty=QTY, personalisation={"type": "object"}),
         result=obj(("lineId",), lineId=STRING))
async def add_line(request: web.Request) -> web.Response:
    carts = request.app[SERVICES].carts
    room = await carts.editable(cart(request))
    body = await json_body(request)
    sku, qty = body.get("sku"), int_in(body, "qty", 1, MAX_QTY, "bad_line")
    if not isinstance(sku, str):
        raise ApiError(400, "bad_line", "sku must be a string")
    personalisation = _personalisation(body.get("personalisation"))
    line_id = await carts.add_line(caller(request), room, sku, qty, personalisation)
    return web.json_response({"lineId": line_id}, status=201)


def _personalisation(value: Any) -> Personalisation | None:
    """The personalisation of a new line as the body gives it: field → text or list of texts
    (their lengths are the product's to judge, after the write)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
            isinstance(v, str) or (isinstance(v, list) and all(isinstance(e, str) for e in v)) for v in value.values()):
        raise ApiError(400, "bad_line", "personalisation must be an object of field → text or list of texts")
    return value


@api.add("PATCH", "/api/carts/{cartId}/lines/{lineId}", "Change a line's quantity",
         auth=CART_OPENER, errors=(404, 409), body=obj(("qty",), qty=QTY),
         result=obj(("lineId", "qty"), lineId=STRING, qty=QTY))
async def set_qty(request: web.Request) -> web.Response:
    carts = request.app[SERVICES].carts
    room = await carts.editable(cart(request))
    line_id = request.match_info["lineId"]
    qty = int_in(await json_body(request), "qty", 1, MAX_QTY, "bad_line")
    await carts.set_qty(caller(request), room, line_id, qty)
    return web.json_response({"lineId": line_id, "qty": qty})


@api.add("DELETE", "/api/carts/{cartId}/lines/{lineId}", "Remove a line (its hold goes back at once)",
         auth=CART_OPENER, errors=(404, 409),
         result=obj(("lineId", "removed"), lineId=STRING, removed={"type": "boolean"}))
async def remove_line(request: web.Request) -> web.Response:
    carts = request.app[SERVICES].carts
    room = await carts.editable(cart(request))
    line_id = request.match_info["lineId"]
    await carts.remove_line(caller(request), room, line_id)
    return web.json_response({"lineId": line_id, "removed": True})


# -- chat over HTTP (for clients without Yjs) ----------------------------------------------------

MESSAGE = obj(("id", "from", "role", "text", "at"), id=STRING, text=STRING, role=STRING, at=INTEGER,
              **{"from": STRING})


@api.add("POST", "/api/carts/{cartId}/messages", "Write in the cart's chat (reaches live clients and the shop floor)",
         ok=201, auth=CART_OPENER, errors=(404, 409, 429), body=obj(("text",), text=NON_EMPTY), result=MESSAGE)
async def post_message(request: web.Request) -> web.Response:
    text = (await json_body(request)).get("text")
    message = await request.app[SERVICES].chat.post(caller(request), cart(request), text)
    return web.json_response(message, status=201)


# -- merging ---------------------------------------------------------------------------------

@api.add("POST", "/api/carts/{cartId}/merge", "Merge this cart into another", errors=(404, 409),
         auth=BOTH_CARTS, body=obj(("into",), into=NON_EMPTY), result=obj(("cartId",), cartId=STRING))
async def merge_route(request: web.Request) -> web.Response:
    into = (await json_body(request)).get("into")
    if not isinstance(into, str):
        raise ApiError(400, "bad_into", "give the target cart id as 'into'")
    target = await request.app[SERVICES].merging.merge_into(caller(request), cart(request), into)
    return web.json_response({"cartId": target})


@api.add("POST", "/api/carts/{cartId}/split", "Move some lines, with their holds, to a new cart of the same owner",
         ok=201, auth=CART_OPENER, errors=(404, 409),
         body=obj(("lineIds",), lineIds={"type": "array", "minItems": 1, "items": NON_EMPTY}),
         result=obj(("cartId",), cartId=STRING))
async def split_route(request: web.Request) -> web.Response:
    line_ids = (await json_body(request)).get("lineIds")
    new = await request.app[SERVICES].splitting.split(caller(request), cart(request), line_ids)
    return web.json_response({"cartId": new}, status=201)


@api.add("POST", "/api/sessions/claim", "Merge an anonymous shopper's open carts into the caller's cart",
         auth=CLAIMANT, body=obj(("anonymousToken",), anonymousToken=STRING),
         result=obj(("cartId",), cartId=STRING), errors=(409,))
async def claim(request: web.Request) -> web.Response:
    who, services = caller(request), request.app[SERVICES]
    try:
        anonymous = services.tokens.verify((await json_body(request)).get("anonymousToken"))
    except auth.TokenError as exc:
        raise ApiError(400, "bad_anonymous_token", str(exc)) from None
    if anonymous.role != "customer" or not anonymous.sub.startswith("anon-") or anonymous.sub == who.sub:
        raise ApiError(400, "bad_anonymous_token", "that is not an anonymous shopper's token")
    return web.json_response({"cartId": await services.merging.claim(who.sub, anonymous.sub)})
