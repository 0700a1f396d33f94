"""Checkout and orders: multi-visit steps, server re-pricing, payment that commits holds, the order workflow, discounts."""
from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ..crdt import CartDoc
from ..crdt.cart import compute_pricing, plain, write_pricing
from ..crdt.schema import MAX_AMOUNT
from . import auth, webhooks
from .access import may_see_customer
from .appkeys import CATALOG, DISCOUNTS, ROOMS, STOCK, STORE
from .carts import new_id, open_record
from .errors import ApiError, busy_as_409, int_in, json_body
from .feeds import customer_event, shop_event
from .openapi import INTEGER, STRING, api, obj
from .rooms import Room
from .store import Store

STEPS = ("personalise", "details", "payment")
# order state -> the states an admin may move it to
TRANSITIONS = {"confirmed": {"dispatched", "cancelled"}, "dispatched": {"delivered"},
               "awaiting_payment": {"cancelled"}}


class DiscountBook:
    """Shop-wide codes a shopper may type (kept in the store; every process keeps a copy)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.codes: dict[str, dict[str, int]] = {}

    async def load(self, _event: Any = None) -> None:
        self.codes = {code: rule for code, rule in (await self.store.list_records("discount")).items()}

    def get(self, code: str) -> dict[str, int] | None:
        return self.codes.get(code.strip().upper())


def discount_rule(body: dict[str, Any]) -> dict[str, int]:
    percent, amount = body.get("percentOff"), body.get("amountOff")
    if (percent is None) == (amount is None):
        raise ApiError(400, "bad_discount", "give exactly one of percentOff (1..100) or amountOff (minor units)")
    if percent is not None:
        return {"percentOff": int_in(body, "percentOff", 1, 100, "bad_discount")}
    return {"amountOff": int_in(body, "amountOff", 1, MAX_AMOUNT, "bad_discount")}  # minor units


def _code(body: dict[str, Any]) -> str:
    code = body.get("code")
    if not isinstance(code, str) or not 1 <= len(code.strip()) <= 64:
        raise ApiError(400, "bad_code", "code must be a string of 1..64 characters")
    return code.strip().upper()


def _admin(request: web.Request) -> auth.Identity:
    who = auth.bearer(request)
    if not who.is_admin:
        raise ApiError(403, "forbidden", "admins only")
    return who


@api.add("PUT", "/api/discounts/{code}", "Define a shop-wide code shoppers may type", auth="admin",
         body=obj(percentOff=INTEGER, amountOff=INTEGER))
async def put_discount(request: web.Request) -> web.Response:
    _admin(request)
    code, rule = request.match_info["code"].strip().upper(), discount_rule(await json_body(request))
    await request.app[STORE].put_record("discount", code, rule)
    request.app[ROOMS].bus.publish_event("discounts", {"code": code})  # every process reloads
    return web.json_response({"code": code, **rule})


@api.add("POST", "/api/carts/{cartId}/discounts", "Offer a discount into a cart, live", auth="admin", ok=201,
         errors=(404, 409), body=obj(("code",), code=STRING, percentOff=INTEGER, amountOff=INTEGER))
async def offer_discount(request: web.Request) -> web.Response:
    _, record = await open_record(request)
    _admin(request)
    body = await json_body(request)
    code, rule = _code(body), discount_rule(body)
    room = await request.app[ROOMS].get(record.id)
    if room.cart.status not in ("open",):
        raise ApiError(409, "not_open", f"cart is {room.cart.status}")

    def change(cart: CartDoc) -> None:
        offers = plain(cart.server.get("offers") or {})
        cart.server["offers"] = {**offers, code: rule}
    await room.write(change)
    await room.set_holds({})  # reprice with the offer
    customer_event(request.app[ROOMS].bus, record.owner, "discount.offered", cartId=record.id, code=code, **rule)
    return web.json_response({"cartId": record.id, "code": code, **rule,
                              "pricing": plain(room.cart.server.get("pricing"))}, status=201)


# -- checkout ---------------------------------------------------------------------------------

@api.add("POST", "/api/carts/{cartId}/checkout/step", "Record the checkout step (kept across visits and devices)",
         auth="whoever may open the cart", errors=(404, 409), body=obj(("step",), step={"enum": list(STEPS)}))
async def checkout_step(request: web.Request) -> web.Response:
    who, record = await open_record(request)
    step = (await json_body(request)).get("step")
    if step not in STEPS:
        raise ApiError(400, "bad_step", f"step is one of {', '.join(STEPS)}")
    room = await request.app[ROOMS].get(record.id)
    if room.cart.status != "open":
        raise ApiError(409, "not_open", f"cart is {room.cart.status}")
    at = int(time.time() * 1000)
    await room.write(lambda cart: cart.server.__setitem__(
        "checkout", {"state": "in_progress", "step": step, "orderId": None, "updatedAt": at}))
    shop_event(request.app[ROOMS].bus, "checkout.step", cartId=record.id, step=step, who=who.sub, role=who.role)
    return web.json_response({"cartId": record.id, "step": step})


def problems(room: Room, catalog: Any) -> list[dict[str, str]]:
    """Why a cart cannot be bought now, line by line (empty: it can)."""
    out = []
    with room.cart.doc.transaction():
        holds = plain(room.cart.server.get("holds") or {})
        for line_id, line in room.cart.lines.items():
            data = plain(line)
            hold = holds.get(line_id) or {}
            if hold.get("status") != "held" or hold.get("qty") != data.get("qty"):
                state = hold.get("status", "not yet decided")
                out.append({"lineId": line_id, "sku": data.get("sku"),
                            "problem": f"only {hold.get('qty', 0)} of {data.get('qty')} held ({state})"})
            product = catalog(str(data.get("sku")))
            for field, spec in (product.personalisation.items() if product else ()):
                value = (data.get("personalisation") or {}).get(field)
                if spec.required and not (value.strip() if isinstance(value, str) else value):
                    out.append({"lineId": line_id, "sku": data.get("sku"),
                                "problem": f"personalisation {field!r} is required"})
    return out


def order_lines(room: Room, pricing: dict[str, Any]) -> list[dict[str, Any]]:
    with room.cart.doc.transaction():
        return [{"lineId": line_id, **pricing["lines"][line_id],
                 "personalisation": plain(line).get("personalisation")}
                for line_id, line in room.cart.lines.items() if line_id in pricing["lines"]]


@api.add("POST", "/api/carts/{cartId}/checkout", "Check out: re-price on the server, freeze, create the order",
         auth="whoever may open the cart", ok=201, errors=(404, 409),
         result=obj(("orderId", "state", "total"), orderId=STRING, state=STRING, total=INTEGER))
async def checkout(request: web.Request) -> web.Response:
    who, record = await open_record(request)
    app = request.app
    rooms, store = app[ROOMS], app[STORE]
    room = await rooms.get(record.id)
    async with busy_as_409(store, f"cart:{record.id}"):  # one checkout of a cart at once, in any process
        existing = await _existing_order(room, store)
        return existing or await _checkout(app, who, record, room)


async def _checkout(app: web.Application, who: auth.Identity, record: Any, room: Room) -> web.Response:
    rooms, store, stock = app[ROOMS], app[STORE], app[STOCK]
    if room.cart.status != "open":
        raise ApiError(409, "not_open", f"cart is {room.cart.status}")
    if not len(room.cart.lines):
        raise ApiError(409, "empty_cart", "the cart has no lines")
    found = problems(room, app[CATALOG].get)
    if found:
        raise ApiError(409, "not_ready", "; ".join(f"line {p['lineId']} ({p['sku']}): {p['problem']}" for p in found))
    pricing = compute_pricing(room.cart, app[CATALOG].get, app[DISCOUNTS].get)
    order_id, now = new_id("o-"), int(time.time() * 1000)
    order = {"id": order_id, "cartId": record.id, "customerId": record.owner, "state": "awaiting_payment",
             "lines": order_lines(room, pricing), "currency": pricing["currency"],
             "subtotal": pricing["subtotal"], "discounts": pricing["discounts"], "total": pricing["total"],
             "createdAt": now, "history": [{"state": "awaiting_payment", "at": now, "by": who.sub}]}
    await stock.extend(record.id, now + int(rooms.config.hold_ttl_seconds * 1000))  # the payment window
    await store.put_record("order", order_id, order)
    await store.put_record("customer-order", f"{record.owner}|{now:013d}|{order_id}", {"orderId": order_id})

    def freeze(cart: CartDoc) -> None:
        cart.server["status"] = "checking_out"
        write_pricing(cart, pricing)
        cart.server["checkout"] = {"state": "awaiting_payment", "step": "payment", "orderId": order_id,
                                   "updatedAt": now}
    await room.write(freeze)
    await _order_event(app, order, "order.created")
    return web.json_response({"orderId": order_id, "state": "awaiting_payment", "total": pricing["total"]},
                             status=201)


async def _existing_order(room: Room, store: Store) -> web.Response | None:
    """A cart already checking out answers with its order: checking out twice makes one order."""
    order_id = (plain(room.cart.server.get("checkout") or {})).get("orderId")
    if room.cart.status == "checking_out" and order_id:
        order = await store.get_record("order", order_id)
        if order:
            return web.json_response({"orderId": order_id, "state": order["state"], "total": order["total"]})
    return None


async def _order_event(app: web.Application, order: dict[str, Any], type_: str) -> None:
    """Live to the customer and the shop floor, and (persisted first) to the host platform."""
    customer_event(app[ROOMS].bus, order["customerId"], type_, orderId=order["id"], cartId=order["cartId"],
                   state=order["state"], total=order["total"])
    await webhooks.emit(app, type_, {"order": order})


# -- payment and the order workflow -----------------------------------------------------------

async def _order(request: web.Request) -> dict[str, Any]:
    order = await request.app[STORE].get_record("order", request.match_info["orderId"])
    if order is None:
        raise ApiError(404, "no_order", "no such order")
    return order


async def _move(app: web.Application, order: dict[str, Any], state: str, who: str, **extra: Any) -> dict[str, Any]:
    order = {**order, **extra, "state": state,
             "history": [*order["history"], {"state": state, "at": int(time.time() * 1000), "by": who}]}
    await app[STORE].put_record("order", order["id"], order)
    await _order_event(app, order, "order.status")
    return order


@api.add("POST", "/api/orders/{orderId}/payment", "The platform reports a payment (idempotent)",
         auth="admin (the host platform)", errors=(404, 409),
         body=obj(("status",), status={"enum": ["paid", "failed"]}, reference=STRING))
async def payment(request: web.Request) -> web.Response:
    who = _admin(request)
    body = await json_body(request)
    status, reference = body.get("status"), body.get("reference")
    if status not in ("paid", "failed"):
        raise ApiError(400, "bad_status", "status is paid or failed")
    app = request.app
    async with busy_as_409(app[STORE], f"order:{request.match_info['orderId']}"):
        return await _payment(app, who, await _order(request), status, reference)


async def _payment(app: web.Application, who: auth.Identity, order: dict[str, Any], status: str,
                   reference: Any) -> web.Response:
    outcome = {"paid": "confirmed", "failed": "payment_failed"}[status]
    if order["state"] != "awaiting_payment":
        if order["state"] == outcome or (status == "paid" and order["state"] in ("dispatched", "delivered")):
            return web.json_response(order)  # the same report twice changes nothing
        raise ApiError(409, "bad_transition", f"order is {order['state']}; payment {status} does not apply")
    room = await app[ROOMS].get(order["cartId"])
    if status == "paid":
        sold = await app[STOCK].commit(order["cartId"], [line["lineId"] for line in order["lines"]])
        order = await _move(app, order, "confirmed", who.sub, payment={"reference": reference, "sold": sold})
        cart_status, checkout_state = "ordered", "confirmed"
        await app[STORE].put_record("cart-closed", order["cartId"], {"status": "ordered", "orderId": order["id"]})
    else:
        order = await _move(app, order, "payment_failed", who.sub, payment={"reference": reference})
        cart_status, checkout_state = "open", "payment_failed"
        room.want_holds(set(room.cart.lines.keys()))  # the holds stay; their clocks start again on edits

    def settle(cart: CartDoc) -> None:
        cart.server["status"] = cart_status
        cart.server["checkout"] = {**plain(cart.server.get("checkout") or {}), "state": checkout_state}
        if status == "paid":
            holds = cart.server.get("holds")
            for line in order["lines"]:
                if holds is not None:
                    holds[line["lineId"]] = {"status": "sold", "qty": line["qty"], "expiresAt": None}
    await room.write(settle)
    return web.json_response(order)


@api.add("POST", "/api/orders/{orderId}/status", "Move an order on: dispatched, delivered, cancelled",
         auth="admin", errors=(404, 409), body=obj(("status",), status={"enum": ["dispatched", "delivered", "cancelled"]}))
async def order_status(request: web.Request) -> web.Response:
    who = _admin(request)
    target = (await json_body(request)).get("status")
    app = request.app
    async with busy_as_409(app[STORE], f"order:{request.match_info['orderId']}"):
        order = await _order(request)
        if target not in TRANSITIONS.get(order["state"], set()):
            raise ApiError(409, "bad_transition", f"an order that is {order['state']} cannot become {target}")
        if target == "cancelled":
            await _cancel(app, order)
        return web.json_response(await _move(app, order, target, who.sub))


async def _cancel(app: web.Application, order: dict[str, Any]) -> None:
    """Cancelled before dispatch: what was sold goes back on the shelf, or the holds are let go."""
    stock = app[STOCK]
    if order["state"] == "confirmed":
        for sku, qty in _units(order).items():
            await stock.adjust(sku, qty)
    else:
        await stock.release_cart(order["cartId"])
    room = await app[ROOMS].get(order["cartId"])
    await room.write(lambda cart: cart.server.__setitem__("status", "closed"))
    await app[STORE].put_record("cart-closed", order["cartId"], {"status": "closed", "orderId": order["id"]})


def _units(order: dict[str, Any]) -> dict[str, int]:
    sold = (order.get("payment") or {}).get("sold") or {}
    units: dict[str, int] = {}
    for line in order["lines"]:
        units[line["sku"]] = units.get(line["sku"], 0) + int(sold.get(line["lineId"], line["qty"]))
    return units


@api.add("GET", "/api/orders/{orderId}", "An order", auth="its customer, operator, admin", errors=(404,))
async def get_order(request: web.Request) -> web.Response:
    who = auth.bearer(request)
    order = await _order(request)
    if not await may_see_customer(request.app[STORE], who, order["customerId"]):
        raise ApiError(403, "forbidden", "not your order")
    return web.json_response(order)
