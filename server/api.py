"""HTTP JSON API for sessions and carts, plus health and the OpenAPI document."""
from __future__ import annotations

import secrets
import time
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from ..crdt import CartDoc
from ..crdt.cart import init_server
from . import auth
from .appkeys import CATALOG, CONFIG, ROOMS, STORE
from .errors import ApiError, json_body
from .openapi import STRING, api, obj
from .rooms import Rooms
from .store import CartRecord, Store

CHANNELS = ("web", "app", "kiosk", "store", "call-centre", "api")


def _version() -> str:
    try:
        return version("livecart")
    except PackageNotFoundError:
        return "0.0.0"


def now_ms() -> int:
    return int(time.time() * 1000)


@api.add("GET", "/healthz", "Liveness and what this process serves", auth=None)
async def healthz(request: web.Request) -> web.Response:
    rooms: Rooms = request.app[ROOMS]
    return web.json_response({"ok": True, "rooms": len(rooms.rooms),
                              "connections": sum(len(r.conns) for r in rooms.rooms.values())})


@api.add("GET", "/api/openapi.json", "This document", auth=None)
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(api.spec(_version()))


@api.add("POST", "/api/sessions/anonymous", "A token for an anonymous shopper", auth=None, ok=201,
         result=obj(("token", "customerId"), token=STRING, customerId=STRING))
async def anonymous_session(request: web.Request) -> web.Response:
    customer_id = "anon-" + secrets.token_urlsafe(12)
    token = auth.mint(request.app[CONFIG].jwt_secret, customer_id, "customer", ttl_seconds=30 * 86400)
    return web.json_response({"token": token, "customerId": customer_id}, status=201)


@api.add("POST", "/api/carts", "Create a cart for the caller", auth="customer, admin (with owner)",
         body=obj(channel={"enum": list(CHANNELS)}, owner=STRING), ok=201,
         result=obj(("cartId",), cartId=STRING))
async def create_cart(request: web.Request) -> web.Response:
    who = auth.bearer(request)
    body = await json_body(request)
    channel = body.get("channel", "web")
    if channel not in CHANNELS:
        raise ApiError(400, "bad_channel", f"channel must be one of {', '.join(CHANNELS)}")
    if who.is_admin:
        owner = body.get("owner")
        if not isinstance(owner, str) or not owner:
            raise ApiError(400, "bad_owner", "an admin creates a cart for an owner: give 'owner'")
    elif who.role == "customer":
        owner = who.sub
    else:
        raise ApiError(403, "forbidden", f"a {who.role} cannot create carts yet")
    record = CartRecord("c-" + secrets.token_urlsafe(12), owner, channel, now_ms())
    store: Store = request.app[STORE]
    await store.append(record.id, CartDoc().write(init_server))
    await store.create_cart(record)
    return web.json_response({"cartId": record.id}, status=201)


async def _record_for(request: web.Request) -> tuple[auth.Identity, CartRecord]:
    who = auth.bearer(request)
    record = await request.app[STORE].get_cart(request.match_info["cartId"])
    if record is None:
        raise ApiError(404, "no_cart", "no such cart")
    if not auth.may_open_cart(who, record):
        raise ApiError(403, "forbidden", "not allowed to open this cart")
    return who, record


@api.add("GET", "/api/carts/{cartId}", "The cart as JSON", auth="the cart's owner, admin",
         errors=(404,))
async def get_cart(request: web.Request) -> web.Response:
    _, record = await _record_for(request)
    rooms: Rooms = request.app[ROOMS]
    room = rooms.rooms.get(record.id)
    if room is not None:
        cart = room.cart
    else:
        stored = await request.app[STORE].load(record.id)
        cart = CartDoc(stored.snapshot, stored.updates)
    return web.json_response({"id": record.id, "owner": record.owner, "channel": record.channel,
                              "createdAt": record.created_at, **cart.to_dict()})


@api.add("GET", "/api/carts", "Carts of an owner", auth="the owner, admin",
         query={"owner": "customer id (defaults to the caller)"})
async def list_carts(request: web.Request) -> web.Response:
    who = auth.bearer(request)
    owner = request.query.get("owner", who.sub)
    if not who.is_admin and owner != who.sub:
        raise ApiError(403, "forbidden", "you may list only your own carts")
    records = await request.app[STORE].list_carts(owner)
    return web.json_response({"carts": [r.to_json() for r in records]})
