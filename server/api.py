"""Health, the OpenAPI document, and anonymous sessions."""
from __future__ import annotations

import secrets
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from . import auth
from .appkeys import CONFIG, ROOMS
from .demo_people import demo_api
from .feeds import admin_events, me_events
from .openapi import COUNT, EVENTS, SSE, STRING, api, obj
from .rooms import Rooms


def _version() -> str:
    try:
        return version("livecart")
    except PackageNotFoundError:
        return "0.0.0"


@api.add("GET", "/healthz", "Liveness and what this process serves", auth=None,
         result=obj(("ok", "rooms", "connections"), ok={"type": "boolean"}, rooms=COUNT, connections=COUNT))
async def healthz(request: web.Request) -> web.Response:
    rooms: Rooms = request.app[ROOMS]
    return web.json_response({"ok": True, "rooms": len(rooms.rooms),
                              "connections": sum(len(r.conns) for r in rooms.rooms.values())})


@api.add("GET", "/api/openapi.json", "This document", auth=None,
         result=obj(("openapi", "info", "paths"), openapi=STRING, info={"type": "object"}, paths={"type": "object"}))
async def openapi(request: web.Request) -> web.Response:
    spec = api.spec(_version())
    if request.app[CONFIG].demo:  # the demo's own routes (sign in as a demo person) are in its document only
        spec["paths"] = {**spec["paths"], **demo_api.paths}
    return web.json_response(spec)


@api.add("POST", "/api/sessions/anonymous", "A token for an anonymous shopper", auth=None, ok=201,
         result=obj(("token", "customerId"), token=STRING, customerId=STRING))
async def anonymous_session(request: web.Request) -> web.Response:
    customer_id = "anon-" + secrets.token_urlsafe(12)
    token = auth.mint(request.app[CONFIG].jwt_secret, customer_id, "customer", ttl_seconds=30 * 86400)
    return web.json_response({"token": token, "customerId": customer_id}, status=201)


api.add("GET", "/api/admin/events", "The shop-floor feed as Server-Sent Events (?token= works too)",
        auth="admin", media=SSE, result=EVENTS)(admin_events)
api.add("GET", "/api/me/events", "A customer's own feed as Server-Sent Events (?token= works too)",
        auth="customer", media=SSE, result=EVENTS)(me_events)
