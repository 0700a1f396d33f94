"""Invite codes: an assistant joins a customer's cart, or a customer claims a walk-in cart."""
from __future__ import annotations

import secrets
import time

from aiohttp import web

from . import auth
from .access import grant_cart
from .appkeys import STORE
from .carts import active_cart, merge, open_record
from .errors import ApiError
from .openapi import INTEGER, STRING, api, obj

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread at a till
CODE_LENGTH = 6
INVITE_TTL = 10 * 60
GUESSES_PER_MINUTE = 10


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


@api.add("POST", "/api/carts/{cartId}/invites", "A short-lived, single-use code to share this cart", ok=201,
         auth="whoever may open the cart", errors=(404,),
         result=obj(("code", "expiresAt"), code=STRING, expiresAt=INTEGER))
async def create_invite(request: web.Request) -> web.Response:
    who, record = await open_record(request)
    code = new_code()
    await request.app[STORE].put_record(
        "invite", code, {"cartId": record.id, "by": who.sub, "role": who.role}, ttl=INVITE_TTL)
    return web.json_response({"code": code, "expiresAt": int((time.time() + INVITE_TTL) * 1000)}, status=201)


@api.add("POST", "/api/invites/{code}/accept", "Use an invite code", errors=(403, 404, 409, 429),
         auth="assistant (joins the cart), customer (claims a walk-in cart into their own)",
         result=obj(("cartId",), cartId=STRING))
async def accept_invite(request: web.Request) -> web.Response:
    who = auth.bearer(request)
    if who.role not in ("assistant", "customer"):  # refused before the code is even looked at, let alone taken
        raise ApiError(403, "forbidden", "an assistant joins a cart with a code; a customer claims a walk-in cart")
    store = request.app[STORE]
    if await store.hit(f"invite-guess:{who.role}:{who.sub}", 60) > GUESSES_PER_MINUTE:
        raise ApiError(429, "too_many_attempts", f"at most {GUESSES_PER_MINUTE} invite codes a minute")
    code = request.match_info["code"].strip().upper()
    invite = await store.get_record("invite", code)
    record = await store.get_cart(invite["cartId"]) if invite else None
    if invite is None or record is None:
        raise ApiError(404, "no_invite", "no such invite code (or it expired, or it was used)")
    claiming = who.role == "customer"
    if claiming and not record.owner.startswith("walkin-"):
        mine = record.owner == who.sub
        raise ApiError(403, "forbidden", "this code is for the assistant who helps you with your own cart" if mine
                       else "this code opens another customer's cart")
    if await store.take_record("invite", code) is None:  # single use: someone was quicker
        raise ApiError(404, "no_invite", "no such invite code (or it expired, or it was used)")
    if who.role == "assistant":
        await grant_cart(store, who, record.id)
    if claiming:
        target = await active_cart(request.app, who.sub, "web")
        await merge(request.app, record.id, target)
        return web.json_response({"cartId": target})
    return web.json_response({"cartId": record.id})
