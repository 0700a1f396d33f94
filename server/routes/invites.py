"""Invite codes over HTTP: share a cart, use a code."""
from __future__ import annotations

from aiohttp import web

from ..guard import CART_OPENER, Rule, caller, cart, role
from ..openapi import INTEGER, STRING, api, obj
from ..services import SERVICES

# refused before the code is even looked at, let alone taken
INVITEE = Rule("assistant (joins the cart), customer (claims a walk-in cart into their own)",
               (role("assistant", "customer",
                     message="an assistant joins a cart with a code; a customer claims a walk-in cart"),))


@api.add("POST", "/api/carts/{cartId}/invites", "A short-lived, single-use code to share this cart", ok=201,
         auth=CART_OPENER, errors=(404,),
         result=obj(("code", "expiresAt"), code=STRING, expiresAt=INTEGER))
async def create_invite(request: web.Request) -> web.Response:
    code, expires_at = await request.app[SERVICES].invites.create(caller(request), cart(request))
    return web.json_response({"code": code, "expiresAt": expires_at}, status=201)


@api.add("POST", "/api/invites/{code}/accept", "Use an invite code", errors=(403, 404, 409, 429), auth=INVITEE,
         result=obj(("cartId",), cartId=STRING))
async def accept_invite(request: web.Request) -> web.Response:
    cart_id = await request.app[SERVICES].invites.accept(caller(request), request.match_info["code"])
    return web.json_response({"cartId": cart_id})
