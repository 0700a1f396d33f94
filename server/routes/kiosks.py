"""Kiosks over HTTP: a customer's sign-in code, and a kiosk's sessions (sign in, who is here, ping, sign out)."""
from __future__ import annotations

from aiohttp import web

from ..errors import json_body
from ..guard import Rule, caller, itself, role
from ..openapi import INTEGER, STRING, api, obj
from ..services import SERVICES

CUSTOMER = Rule("customer", (role("customer", message="a customer asks for a kiosk code"),))
THE_KIOSK = Rule("the kiosk", (itself("kioskId", "kiosk", "only that kiosk (or an admin) manages its sessions"),))


@api.add("POST", "/api/kiosk-codes", "A code to show on the phone and type at a kiosk", ok=201,
         auth=CUSTOMER, result=obj(("code", "expiresAt"), code=STRING, expiresAt=INTEGER))
async def kiosk_code(request: web.Request) -> web.Response:
    code, expires_at = await request.app[SERVICES].kiosks.code_for(caller(request).sub)
    return web.json_response({"code": code, "expiresAt": expires_at}, status=201)


@api.add("POST", "/api/kiosks/{kioskId}/sessions", "Sign a customer in at this kiosk", ok=201,
         auth=THE_KIOSK, errors=(404, 429), body=obj(("code",), code=STRING),
         result=obj(("cartId", "customerId", "idleSeconds"), cartId=STRING, customerId=STRING,
                    idleSeconds=INTEGER))
async def sign_in(request: web.Request) -> web.Response:
    kiosks, kiosk_id = request.app[SERVICES].kiosks, request.match_info["kioskId"]
    await kiosks.count_attempt(kiosk_id)
    session = await kiosks.sign_in(kiosk_id, str((await json_body(request)).get("code", "")))
    return web.json_response({"cartId": session["cartId"], "customerId": session["customerId"],
                              "idleSeconds": int(kiosks.idle)}, status=201)


@api.add("GET", "/api/kiosks/{kioskId}", "The kiosk: its idle limit and who is signed in (null: nobody)",
         auth=THE_KIOSK, result=obj(("kioskId", "idleSeconds", "session"), kioskId=STRING, idleSeconds=INTEGER,
                                    session={"type": ["object", "null"]}))
async def kiosk_info(request: web.Request) -> web.Response:
    """What a kiosk screen needs to start: the server's real idle limit, and its customer if any (no 404)."""
    kiosks, kiosk_id = request.app[SERVICES].kiosks, request.match_info["kioskId"]
    return web.json_response({"kioskId": kiosk_id, "idleSeconds": int(kiosks.idle),
                              "session": await kiosks.state(kiosk_id)})


@api.add("GET", "/api/kiosks/{kioskId}/sessions", "Who is signed in here", auth=THE_KIOSK, errors=(404,),
         result=obj(("cartId", "customerId", "idleSecondsLeft"), cartId=STRING, customerId=STRING,
                    idleSecondsLeft=INTEGER))
async def current(request: web.Request) -> web.Response:
    session, left = await request.app[SERVICES].kiosks.current(request.match_info["kioskId"])
    return web.json_response({"cartId": session["cartId"], "customerId": session["customerId"],
                              "idleSecondsLeft": left})


@api.add("POST", "/api/kiosks/{kioskId}/sessions/ping", "The customer is still there (resets the idle clock)",
         auth=THE_KIOSK, errors=(404,), result=obj(("idleSeconds",), idleSeconds=INTEGER))
async def ping(request: web.Request) -> web.Response:
    kiosks = request.app[SERVICES].kiosks
    await kiosks.ping(request.match_info["kioskId"])
    return web.json_response({"idleSeconds": int(kiosks.idle)})


@api.add("DELETE", "/api/kiosks/{kioskId}/sessions", "Sign out: the kiosk loses the cart at once",
         auth=THE_KIOSK, result=obj(("signedOut",), signedOut={"type": "boolean"}))
async def sign_out_route(request: web.Request) -> web.Response:
    signed_out = await request.app[SERVICES].kiosks.sign_out(request.match_info["kioskId"], "signed out")
    return web.json_response({"signedOut": signed_out})
