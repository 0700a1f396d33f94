"""Carts over HTTP: create, read, list, line edits, and merging one cart into another (claim, invites)."""
from __future__ import annotations

import secrets
import time
from typing import Any

from aiohttp import web

from ..crdt import CartDoc
from ..crdt.cart import init_server, new_line
from ..crdt.schema import MAX_QTY
from ..crdt.merge import (
    MergeError, MergePlan, apply_merge, check_mergeable, merged_source_status, plan_merge,
)
from ..crdt.validate import check_line
from . import auth
from .access import grant_cart, may_open, record_lookup
from .appkeys import CATALOG, CONFIG, DISCOUNTS, ROOMS, STOCK, STORE
from .errors import ApiError, busy_as_409, int_in, json_body
from .feeds import shop_event
from .openapi import INTEGER, NON_EMPTY, QTY, STRING, api, obj, param
from .reconcile import sync_of
from .shop_floor import open_carts
from .rooms import Room
from .stock import StockError
from .store import CartRecord

CHANNELS = ("web", "app", "kiosk", "store", "call-centre", "api")
ROLE_CHANNEL = {"customer": "web", "assistant": "store", "operator": "call-centre", "kiosk": "kiosk", "admin": "api"}


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(12)


async def create_cart_record(app: web.Application, owner: str, channel: str) -> CartRecord:
    record = CartRecord(new_id("c-"), owner, channel, now_ms())
    store = app[STORE]
    await store.append(record.id, CartDoc().write(init_server))
    await store.create_cart(record)
    shop_event(app[ROOMS].bus, "cart.created", cartId=record.id, owner=owner, channel=channel)
    return record


async def active_cart(app: web.Application, owner: str, channel: str) -> str:
    """The owner's newest open cart, created when there is none."""
    store = app[STORE]
    closed = await store.list_records("cart-closed")
    for record in reversed(await store.list_carts(owner)):
        if record.id not in closed:
            return record.id
    return (await create_cart_record(app, owner, channel)).id


# -- routes ----------------------------------------------------------------------------

@api.add("POST", "/api/carts", "Create a cart", ok=201, result=obj(("cartId", "owner"), cartId=STRING, owner=STRING),
         auth="customer (own), assistant (a walk-in cart), operator and admin (for `owner`, which they must give)",
         body=obj(channel={"enum": list(CHANNELS)}, owner=NON_EMPTY))
async def create_cart(request: web.Request) -> web.Response:
    who = auth.bearer(request)
    body = await json_body(request)
    channel = body.get("channel", ROLE_CHANNEL.get(who.role, "web"))
    if channel not in CHANNELS:
        raise ApiError(400, "bad_channel", f"channel must be one of {', '.join(CHANNELS)}")
    if "owner" in body and (not isinstance(body["owner"], str) or not body["owner"]):
        raise ApiError(400, "bad_owner", "owner is a customer id (a non-empty string)")
    store = request.app[STORE]
    if who.role == "customer":
        owner = who.sub
    elif who.role == "assistant":
        owner = new_id("walkin-")  # a walk-in shopper, until they claim it by invite code
    elif who.role in ("operator", "admin"):
        owner = body.get("owner")
        if not isinstance(owner, str) or not owner:
            raise ApiError(400, "bad_owner", f"an {who.role} creates a cart for a customer: give 'owner'")
        if who.role == "operator" and await store.get_record("lookup", f"{who.sub}|{owner}") is None:
            raise ApiError(403, "forbidden", "look the customer up first (GET /api/customers/{id})")
    else:
        raise ApiError(403, "forbidden", "a kiosk gets its cart by signing a customer in")
    record = await create_cart_record(request.app, owner, channel)
    if who.role == "assistant":
        await grant_cart(store, who, record.id)
    return web.json_response({"cartId": record.id, "owner": owner}, status=201)


async def open_record(request: web.Request) -> tuple[auth.Identity, CartRecord]:
    """The caller and the cart named in the path, or 401/403/404."""
    who = auth.bearer(request)
    store = request.app[STORE]
    record = await store.get_cart(request.match_info["cartId"])
    if record is None:
        raise ApiError(404, "no_cart", "no such cart")
    if not await may_open(store, who, record):
        raise ApiError(403, "forbidden", "not allowed to open this cart")
    return who, record


@api.add("GET", "/api/carts/{cartId}", "The cart as JSON", auth="whoever may open it", errors=(404,),
         result=obj(("id", "owner", "channel", "createdAt", "lines", "status"), id=STRING, owner=STRING,
                    channel=STRING, createdAt=INTEGER, lines={"type": "object"}, status=STRING))
async def get_cart(request: web.Request) -> web.Response:
    _, record = await open_record(request)
    room = request.app[ROOMS].rooms.get(record.id)
    if room is not None:
        cart = room.cart
    else:
        stored = await request.app[STORE].load(record.id)
        cart = CartDoc(stored.snapshot, stored.updates)
        # Shown as the authority holds them (a crash may have left the stored doc behind it);
        # not stored: the room writes the same when it next loads.
        sync = sync_of(cart, await request.app[STOCK].holds_of(record.id), now_ms())
        if sync.show:
            cart.settle(dict(sync.show), request.app[CATALOG].get, request.app[DISCOUNTS].get)
    return web.json_response({"id": record.id, "owner": record.owner, "channel": record.channel,
                              "createdAt": record.created_at, **cart.to_dict()})


@api.add("GET", "/api/carts", "Carts of an owner; or (admin, ?status=open) every open cart with a summary",
         auth="the owner, operator (records a lookup), admin; ?status=open: admin",
         query={"owner": "customer id (defaults to the caller)", "status": param("open: the shop floor's carts",
                                                                                  {"enum": ["open"]})},
         result=obj(("carts",), carts={"type": "array", "items": obj(("id", "owner", "status"), id=STRING,
                                                                     owner=STRING, status=STRING)}))
async def list_carts(request: web.Request) -> web.Response:
    who = auth.bearer(request)
    if "status" in request.query:
        return await _shop_floor(request, who)
    owner = request.query.get("owner", who.sub)
    store = request.app[STORE]
    if who.role == "operator":
        await record_lookup(store, who, owner)
    elif not who.is_admin and owner != who.sub:
        raise ApiError(403, "forbidden", "you may list only your own carts")
    closed = await store.list_records("cart-closed")
    return web.json_response({"carts": [
        {**r.to_json(), "status": closed.get(r.id, {}).get("status", "open")}
        for r in await store.list_carts(owner)]})


async def _shop_floor(request: web.Request, who: auth.Identity) -> web.Response:
    if not who.is_admin:
        raise ApiError(403, "forbidden", "the shop floor's carts are for admins")
    if request.query["status"] != "open":
        raise ApiError(400, "bad_status", "status=open is the one filter")
    docs = {cart_id: room.cart for cart_id, room in request.app[ROOMS].rooms.items()}
    return web.json_response({"carts": await open_carts(request.app[STORE], docs)})


# -- line edits over HTTP (for clients without Yjs) ------------------------------------------------

async def editable_room(request: web.Request) -> tuple[auth.Identity, Room]:
    who, record = await open_record(request)
    room = await request.app[ROOMS].get(record.id)
    if room.cart.status != "open":
        raise ApiError(409, "not_open", f"cart is {room.cart.status}"
                       + (f" into {room.cart.merged_into}" if room.cart.merged_into else ""))
    return who, room


def _line_check(request: web.Request, line_id: str) -> Any:
    catalog, limits = request.app[CATALOG].get, request.app[CONFIG].limits
    return lambda cart: check_line(line_id, cart.lines[line_id], catalog, limits)


@api.add("POST", "/api/carts/{cartId}/lines", "Add a line (reaches live clients like any edit)", ok=201,
         auth="whoever may open the cart", errors=(404, 409),
         body=obj(("sku", "qty"), sku=STRING, qty=QTY, personalisation={"type": "object"}),
         result=obj(("lineId",), lineId=STRING))
async def add_line(request: web.Request) -> web.Response:
    who, room = await editable_room(request)
    body = await json_body(request)
    line_id = new_id("l-")
    sku, qty = body.get("sku"), int_in(body, "qty", 1, MAX_QTY, "bad_line")
    if not isinstance(sku, str):
        raise ApiError(400, "bad_line", "sku must be a string")
    personalisation = _personalisation(body.get("personalisation"))
    if len(room.cart.lines) >= request.app[CONFIG].limits.max_lines:
        raise ApiError(409, "too_many_lines", "the cart is full")

    def change(cart: CartDoc) -> None:
        cart.lines[line_id] = new_line(sku, qty, who.sub, ROLE_CHANNEL.get(who.role, "api"), now_ms(), personalisation)
    await _edit(who, room, change, _line_check(request, line_id), line_id)
    return web.json_response({"lineId": line_id}, status=201)


def _personalisation(value: Any) -> dict[str, str | list[str]] | None:
    """The personalisation of a new line as the body gives it: field → text or list of texts
    (their lengths are the product's to judge, after the write)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
            isinstance(v, str) or (isinstance(v, list) and all(isinstance(e, str) for e in v)) for v in value.values()):
        raise ApiError(400, "bad_line", "personalisation must be an object of field → text or list of texts")
    return value


@api.add("PATCH", "/api/carts/{cartId}/lines/{lineId}", "Change a line's quantity",
         auth="whoever may open the cart", errors=(404, 409), body=obj(("qty",), qty=QTY),
         result=obj(("lineId", "qty"), lineId=STRING, qty=QTY))
async def set_qty(request: web.Request) -> web.Response:
    who, room = await editable_room(request)
    line_id = request.match_info["lineId"]
    qty = int_in(await json_body(request), "qty", 1, MAX_QTY, "bad_line")
    if line_id not in room.cart.lines:
        raise ApiError(404, "no_line", "no such line")

    def change(cart: CartDoc) -> None:
        cart.lines[line_id]["qty"] = qty
    await _edit(who, room, change, _line_check(request, line_id), line_id)
    return web.json_response({"lineId": line_id, "qty": qty})


@api.add("DELETE", "/api/carts/{cartId}/lines/{lineId}", "Remove a line (its hold goes back at once)",
         auth="whoever may open the cart", errors=(404, 409),
         result=obj(("lineId", "removed"), lineId=STRING, removed={"type": "boolean"}))
async def remove_line(request: web.Request) -> web.Response:
    who, room = await editable_room(request)
    line_id = request.match_info["lineId"]
    if line_id not in room.cart.lines:
        raise ApiError(404, "no_line", "no such line")
    await _edit(who, room, lambda cart: cart.lines.pop(line_id), lambda cart: None, line_id)
    return web.json_response({"lineId": line_id, "removed": True})


async def _edit(who: auth.Identity, room: Room, change: Any, check: Any, line_id: str) -> None:
    """An edit held to the same schema rules as a Yjs client's (a broken rule is a 400)."""
    existed = line_id in room.cart.lines
    try:
        update = room.cart.write_checked(change, check, origin="http")
    except (ValueError, TypeError) as exc:
        raise ApiError(400, "bad_line", str(exc)) from None
    await room.commit(update)
    exists = line_id in room.cart.lines
    room.report_edit(who, added={line_id} if exists and not existed else set(),
                     removed={line_id} if existed and not exists else set())
    room.want_holds({line_id})


# -- merging ---------------------------------------------------------------------------------

async def merge(app: web.Application, source_id: str, target_id: str) -> None:
    """Merges one cart into another; holds move with their lines and never pass through stock.

    1. The source is marked merged first (its clients close with 4409 naming the target),
       so nothing edits it while it is read. 2. Each hold moves to its target line in one
       stock step (the surplus of a combined line goes back). 3. The target gets the lines.
    """
    rooms, store = app[ROOMS], app[STORE]
    source, target = await rooms.get(source_id), await rooms.get(target_id)
    _mergeable(source, target)
    async with busy_as_409(store, f"cart:{source_id}"):  # the same lock checkout takes
        await _merge(app, source, target)


async def _merge(app: web.Application, source: Room, target: Room) -> None:
    rooms, stock, store = app[ROOMS], app[STOCK], app[STORE]
    source_id, target_id = source.id, target.id
    plan = _mergeable(source, target)  # again: the status may have changed while we waited
    try:  # the target's lines first (no awaits between plan and apply), then the holds move onto them
        merged_lines = apply_merge(target.cart, plan)
    except MergeError as exc:
        raise ApiError(409, exc.code, str(exc)) from None
    for key in await store.list_records("grant"):  # staff who helped with the source follow it
        sub, _, cart = key.partition("|")
        if cart == source_id:
            await store.put_record("grant", f"{sub}|{target_id}", {"role": "assistant"})
    await source.commit(merged_source_status(source.cart, target_id))
    await store.put_record("cart-closed", source_id, {"status": "merged", "mergedInto": target_id})
    rooms.bus.publish_event("gone", {"cartId": source_id, "reason": f"cart merged into {target_id}"})
    moved: dict[str, dict[str, Any]] = {}
    for move in plan.moves:
        try:
            decision = await stock.transfer((source_id, move.src_line), (target_id, move.dst_line), move.keep)
            moved[move.dst_line] = {**decision.to_json(), "sku": move.sku}
        except StockError:
            pass  # nothing was held for that line: the target reserves it afresh below
    await stock.release_cart(source_id)  # anything left (lines the plan dropped) goes back once
    await target.commit(merged_lines)
    await target.set_holds(moved)
    # Lines whose hold did not come along, and combined lines a client raised meanwhile, reserve now.
    target.want_holds(set(moved) | target.cart.lines_without_hold())
    await source.set_holds({line: {"status": "released", "qty": 0, "expiresAt": None}
                            for line in source.cart.lines.keys()})


def _mergeable(source: Room, target: Room) -> MergePlan:
    try:
        check_mergeable(source.cart, target.cart, source.id, target.id)
        return plan_merge(source.cart, target.cart, limits=source.rooms.config.limits,
                          source_id=source.id, target_id=target.id)
    except MergeError as exc:
        raise ApiError(400 if exc.code == "same_cart" else 409, exc.code, str(exc)) from None


@api.add("POST", "/api/carts/{cartId}/merge", "Merge this cart into another", errors=(404, 409),
         auth="whoever may open both carts", body=obj(("into",), into=NON_EMPTY), result=obj(("cartId",), cartId=STRING))
async def merge_route(request: web.Request) -> web.Response:
    who, source = await open_record(request)
    into = (await json_body(request)).get("into")
    if not isinstance(into, str):
        raise ApiError(400, "bad_into", "give the target cart id as 'into'")
    target = await request.app[STORE].get_cart(into)
    if target is None:
        raise ApiError(404, "no_cart", "no such target cart")
    if not await may_open(request.app[STORE], who, target):
        raise ApiError(403, "forbidden", "not allowed to open the target cart")
    await merge(request.app, source.id, target.id)
    return web.json_response({"cartId": target.id})


@api.add("POST", "/api/sessions/claim", "Merge an anonymous shopper's open carts into the caller's cart",
         auth="customer (signed in)", body=obj(("anonymousToken",), anonymousToken=STRING),
         result=obj(("cartId",), cartId=STRING), errors=(409,))
async def claim(request: web.Request) -> web.Response:
    who = auth.bearer(request)
    if who.role != "customer" or who.sub.startswith("anon-"):
        raise ApiError(403, "forbidden", "only a signed-in customer claims carts")
    try:
        anonymous = auth.verify(request.app[CONFIG].jwt_secret, (await json_body(request)).get("anonymousToken"))
    except auth.TokenError as exc:
        raise ApiError(400, "bad_anonymous_token", str(exc)) from None
    if anonymous.role != "customer" or not anonymous.sub.startswith("anon-") or anonymous.sub == who.sub:
        raise ApiError(400, "bad_anonymous_token", "that is not an anonymous shopper's token")
    store = request.app[STORE]
    target = await active_cart(request.app, who.sub, "web")
    closed = await store.list_records("cart-closed")
    for record in await store.list_carts(anonymous.sub):
        if record.id not in closed and record.id != target:
            await merge(request.app, record.id, target)
    return web.json_response({"cartId": target})

