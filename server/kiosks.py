"""Kiosks: one customer at a time, signed in with a code from their phone, signed out on request or when idle."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator

from aiohttp import web

from . import auth
from .appkeys import CONFIG, ROOMS, STORE
from .carts import active_cart
from .errors import ApiError, json_body
from .invites import new_code
from .openapi import INTEGER, STRING, api, obj
from .tasks import cancel_and_wait

log = logging.getLogger("livecart.kiosks")
CODE_TTL = 5 * 60
TOUCH_EVERY = 5.0  # seconds between two idle-clock resets written for one kiosk


def _kiosk(request: web.Request) -> tuple[auth.Identity, str]:
    who, kiosk_id = auth.bearer(request), request.match_info["kioskId"]
    if not (who.is_admin or (who.role == "kiosk" and who.sub == kiosk_id)):
        raise ApiError(403, "forbidden", "only that kiosk (or an admin) manages its sessions")
    return who, kiosk_id


@api.add("POST", "/api/kiosk-codes", "A code to show on the phone and type at a kiosk", ok=201,
         auth="customer", result=obj(("code", "expiresAt"), code=STRING, expiresAt=INTEGER))
async def kiosk_code(request: web.Request) -> web.Response:
    who = auth.bearer(request)
    if who.role != "customer":
        raise ApiError(403, "forbidden", "a customer asks for a kiosk code")
    code = new_code()
    await request.app[STORE].put_record("kiosk-code", code, {"customerId": who.sub}, ttl=CODE_TTL)
    return web.json_response({"code": code, "expiresAt": int((time.time() + CODE_TTL) * 1000)}, status=201)


@api.add("POST", "/api/kiosks/{kioskId}/sessions", "Sign a customer in at this kiosk", ok=201,
         auth="the kiosk", errors=(404, 429), body=obj(("code",), code=STRING),
         result=obj(("cartId", "customerId", "idleSeconds"), cartId=STRING, customerId=STRING,
                    idleSeconds=INTEGER))
async def sign_in(request: web.Request) -> web.Response:
    _, kiosk_id = _kiosk(request)
    store = request.app[STORE]
    if await store.hit(f"kiosk-guess:{kiosk_id}", 60) > 10:
        raise ApiError(429, "too_many_attempts", "at most 10 codes a minute")
    code = str((await json_body(request)).get("code", "")).strip().upper()
    granted = await store.take_record("kiosk-code", code)
    if granted is None:
        raise ApiError(404, "no_code", "no such kiosk code (or it expired, or it was used)")
    await sign_out(request.app, kiosk_id, "another customer signed in")
    cart_id = await active_cart(request.app, granted["customerId"], "kiosk")
    session = {"customerId": granted["customerId"], "cartId": cart_id, "lastActive": time.time()}
    await store.put_record("kiosk", kiosk_id, session)
    idle = request.app[CONFIG].kiosk_idle_seconds
    return web.json_response({"cartId": cart_id, "customerId": granted["customerId"],
                              "idleSeconds": int(idle)}, status=201)


@api.add("GET", "/api/kiosks/{kioskId}", "The kiosk: its idle limit and who is signed in (null: nobody)",
         auth="the kiosk", result=obj(("kioskId", "idleSeconds", "session"), kioskId=STRING, idleSeconds=INTEGER,
                                      session={"type": ["object", "null"]}))
async def kiosk_info(request: web.Request) -> web.Response:
    """What a kiosk screen needs to start: the server's real idle limit, and its customer if any."""
    _, kiosk_id = _kiosk(request)
    session = await request.app[STORE].get_record("kiosk", kiosk_id)
    idle = request.app[CONFIG].kiosk_idle_seconds
    current_session = None if session is None else {
        "cartId": session["cartId"], "customerId": session["customerId"],
        "idleSecondsLeft": max(0, int(session["lastActive"] + idle - time.time()))}
    return web.json_response({"kioskId": kiosk_id, "idleSeconds": int(idle), "session": current_session})


@api.add("GET", "/api/kiosks/{kioskId}/sessions", "Who is signed in here", auth="the kiosk", errors=(404,),
         result=obj(("cartId", "customerId", "idleSecondsLeft"), cartId=STRING, customerId=STRING,
                    idleSecondsLeft=INTEGER))
async def current(request: web.Request) -> web.Response:
    _, kiosk_id = _kiosk(request)
    session = await request.app[STORE].get_record("kiosk", kiosk_id)
    if session is None:
        raise ApiError(404, "signed_out", "nobody is signed in at this kiosk")
    idle = request.app[CONFIG].kiosk_idle_seconds
    left = max(0, int(session["lastActive"] + idle - time.time()))
    return web.json_response({"cartId": session["cartId"], "customerId": session["customerId"],
                              "idleSecondsLeft": left})


@api.add("POST", "/api/kiosks/{kioskId}/sessions/ping", "The customer is still there (resets the idle clock)",
         auth="the kiosk", errors=(404,), result=obj(("idleSeconds",), idleSeconds=INTEGER))
async def ping(request: web.Request) -> web.Response:
    _, kiosk_id = _kiosk(request)
    if not await touch(request.app, kiosk_id, force=True):
        raise ApiError(404, "signed_out", "nobody is signed in at this kiosk")
    return web.json_response({"idleSeconds": int(request.app[CONFIG].kiosk_idle_seconds)})


@api.add("DELETE", "/api/kiosks/{kioskId}/sessions", "Sign out: the kiosk loses the cart at once",
         auth="the kiosk", result=obj(("signedOut",), signedOut={"type": "boolean"}))
async def sign_out_route(request: web.Request) -> web.Response:
    _, kiosk_id = _kiosk(request)
    signed_out = await sign_out(request.app, kiosk_id, "signed out")
    return web.json_response({"signedOut": signed_out})


async def sign_out(app: web.Application, kiosk_id: str, reason: str) -> bool:
    """Revokes the kiosk's access and closes its sockets in every process; the cart stays the customer's."""
    session = await app[STORE].take_record("kiosk", kiosk_id)
    if session is None:
        return False
    app[ROOMS].bus.publish_event("revoke", {"role": "kiosk", "sub": kiosk_id, "reason": f"kiosk {reason}"})
    return True


_last_touch: dict[str, float] = {}


async def touch(app: web.Application, kiosk_id: str, force: bool = False) -> bool:
    """Resets the idle clock (throttled: a burst of edits writes once)."""
    now = time.time()
    if not force and now - _last_touch.get(kiosk_id, 0) < TOUCH_EVERY:
        return True
    store = app[STORE]
    session = await store.get_record("kiosk", kiosk_id)
    if session is None:
        return False
    _last_touch[kiosk_id] = now
    await store.put_record("kiosk", kiosk_id, {**session, "lastActive": now})
    return True


async def idle_sweeper(app: web.Application) -> AsyncIterator[None]:
    """Signs out kiosks nobody has used for `kiosk_idle_seconds` (any process may; one wins)."""
    idle = app[CONFIG].kiosk_idle_seconds

    async def sweep() -> None:
        while True:
            await asyncio.sleep(min(5.0, max(0.2, idle / 4)))
            try:
                for kiosk_id, session in (await app[STORE].list_records("kiosk")).items():
                    if time.time() - session["lastActive"] > idle:
                        await sign_out(app, kiosk_id, f"signed out after {int(idle)} s idle")
            except Exception as exc:  # storage away: try again next round
                log.warning("kiosk idle sweep failed: %s", exc)
    task = asyncio.ensure_future(sweep())
    yield
    await cancel_and_wait(task)  # ended before the store closes (a single cancel can be lost)


def on_client_edit(app: web.Application):
    """A kiosk's own edits count as activity."""
    def edited(who: auth.Identity, cart_id: str) -> None:
        if who.role == "kiosk":
            asyncio.ensure_future(touch(app, who.sub))
    return edited
