"""Checkout and orders: multi-visit steps, server re-pricing, payment that commits holds, the order workflow, discounts."""
from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ..crdt import CartDoc
from ..crdt.cart import compute_pricing, plain, write_pricing
from ..crdt.details import clean_details, missing_details
from ..crdt.schema import MAX_AMOUNT
from . import auth, orders, profiles, webhooks
from .access import may_see_order
from .appkeys import CATALOG, DISCOUNTS, INDEX, ROOMS, STOCK, STORE
from .carts import new_id, open_record
from .errors import ApiError, busy_as_409, int_in, json_body
from .feeds import customer_event, shop_event
from .openapi import AMOUNT, INTEGER, STRING, api, integer, obj, string
from .rooms import Room
from .stock import StockError
from .store import HoldRow, Store

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


# exactly one of the two; a null is as good as leaving it out (discount_rule reads them with .get)
DISCOUNT = {"oneOf": [obj(("percentOff",), percentOff=integer(1, 100), amountOff={"type": "null"}),
                      obj(("amountOff",), amountOff=AMOUNT, percentOff={"type": "null"})]}
CHECKED_OUT = obj(("orderId", "state", "total"), orderId=STRING, state=STRING, total=INTEGER)
TRACKING = {**obj(("carrier", "number", "url"), carrier=string(1, 100, pattern=r"\S"),
                  number=string(1, 100, pattern=r"\S"), url=string(1, 2000, pattern=r"^https?://\S+$")),
            "additionalProperties": False}
ORDER = obj(("id", "cartId", "customerId", "state", "lines", "total", "history"), id=STRING, cartId=STRING,
            customerId=STRING, state=STRING, lines={"type": "array"}, total=INTEGER, history={"type": "array"})


def _admin(request: web.Request) -> auth.Identity:
    who = auth.bearer(request)
    if not who.is_admin:
        raise ApiError(403, "forbidden", "admins only")
    return who


@api.add("PUT", "/api/discounts/{code}", "Define a shop-wide code shoppers may type", auth="admin",
         body={"type": "object", **DISCOUNT}, result=obj(("code",), code=STRING))
async def put_discount(request: web.Request) -> web.Response:
    _admin(request)
    code, rule = request.match_info["code"].strip().upper(), discount_rule(await json_body(request))
    await request.app[STORE].put_record("discount", code, rule)
    request.app[ROOMS].bus.publish_event("discounts", {"code": code})  # every process reloads
    return web.json_response({"code": code, **rule})


@api.add("POST", "/api/carts/{cartId}/discounts", "Offer a discount into a cart, live", auth="admin", ok=201,
         errors=(404, 409), body={**obj(("code",), code=string(1, 64, pattern=r"\S")), **DISCOUNT},
         result=obj(("cartId", "code", "pricing"), cartId=STRING, code=STRING, pricing={"type": "object"}))
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
         auth="whoever may open the cart", errors=(404, 409), body=obj(("step",), step={"enum": list(STEPS)}),
         result=obj(("cartId", "step"), cartId=STRING, step={"enum": list(STEPS)}))
async def checkout_step(request: web.Request) -> web.Response:
    who, record = await open_record(request)
    step = (await json_body(request)).get("step")
    if step not in STEPS:
        raise ApiError(400, "bad_step", f"step is one of {', '.join(STEPS)}")
    room = await request.app[ROOMS].get(record.id)
    if room.cart.status != "open":
        raise ApiError(409, "not_open", f"cart is {room.cart.status}")
    missing = missing_details(plain(room.cart.meta.get("details") or {})) if step == "payment" else []
    if missing:
        raise ApiError(409, "details_incomplete", "checkout details missing or invalid: " + ", ".join(missing))
    at = int(time.time() * 1000)
    await room.write(lambda cart: cart.server.__setitem__(
        "checkout", {"state": "in_progress", "step": step, "orderId": None, "updatedAt": at}))
    shop_event(request.app[ROOMS].bus, "checkout.step", cartId=record.id, step=step, who=who.sub, role=who.role)
    return web.json_response({"cartId": record.id, "step": step})


def problems(room: Room, catalog: Any, held: dict[str, HoldRow]) -> list[dict[str, str]]:
    """Why a cart cannot be bought now, line by line (empty: it can). `held`: what the stock
    authority holds for the cart, the only truth about holds (the doc may lag behind it)."""
    out = []
    with room.cart.doc.transaction():
        holds = plain(room.cart.server.get("holds") or {})
        for line_id, line in room.cart.lines.items():
            data = plain(line)
            hold = held.get(line_id)
            if hold is None or hold.sku != data.get("sku") or hold.qty != data.get("qty"):
                state = (holds.get(line_id) or {}).get("status", "not yet decided")
                out.append({"lineId": line_id, "sku": data.get("sku"),
                            "problem": f"only {hold.qty if hold else 0} of {data.get('qty')} held ({state})"})
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
         result=CHECKED_OUT, also={200: CHECKED_OUT})  # 200: the cart had checked out already, the same order
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
    now = int(time.time() * 1000)
    # The payment window first, then what is held: nothing read below runs out before payment.
    await stock.extend(record.id, now + int(rooms.config.hold_ttl_seconds * 1000))
    held = await stock.holds_of(record.id)
    await room.show_holds(held)  # the doc says what the authority holds, so the price follows it
    found = problems(room, app[CATALOG].get, held)
    if found:
        raise ApiError(409, "not_ready", "; ".join(f"line {p['lineId']} ({p['sku']}): {p['problem']}" for p in found))
    pricing = compute_pricing(room.cart, app[CATALOG].get, app[DISCOUNTS].get)
    order_id = new_id("o-")
    order = orders.new_order(order_id, record.id, record.owner, order_lines(room, pricing), pricing,
                             clean_details(plain(room.cart.meta.get("details") or {})), now, who.sub)
    await orders.save(store, app[INDEX], order)
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
                   state=order["state"], status=orders.status_of(order), total=order["total"],
                   createdAt=order["createdAt"], **({"tracking": order["tracking"]} if order.get("tracking") else {}))
    await webhooks.emit(app, type_, {"order": order})


# -- payment and the order workflow -----------------------------------------------------------

async def _order(request: web.Request) -> dict[str, Any]:
    order = await request.app[STORE].get_record("order", request.match_info["orderId"])
    if order is None:
        raise ApiError(404, "no_order", "no such order")
    return order


async def _move(app: web.Application, order: dict[str, Any], state: str, who: str, **extra: Any) -> dict[str, Any]:
    order = orders.moved(order, state, who, int(time.time() * 1000), **extra)
    await orders.save(app[STORE], app[INDEX], order)
    await _order_event(app, order, "order.status")
    return order


@api.add("POST", "/api/orders/{orderId}/payment", "The platform reports a payment (idempotent)",
         auth="admin (the host platform)", errors=(404, 409),
         body=obj(("status",), status={"enum": ["paid", "failed"]}, reference={"description": "kept as given"}),
         result=ORDER)
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
        if order["state"] == outcome:  # the same report twice changes nothing, but a crash may have
            await _show_outcome(app, order, status)  # cut the first short before the cart showed it
            return web.json_response(order)
        if status == "paid" and order["state"] in ("dispatched", "delivered"):
            return web.json_response(order)
        raise ApiError(409, "bad_transition", f"order is {order['state']}; payment {status} does not apply")
    if status == "paid":
        sold = await _sell(app, await app[ROOMS].get(order["cartId"]), order)
        order = await _move(app, order, "confirmed", who.sub, payment={"reference": reference, "sold": sold})
        await profiles.record_paid(app[INDEX], order, lambda sku: getattr(app[CATALOG].get(sku), "category", None))
    else:
        order = await _move(app, order, "payment_failed", who.sub, payment={"reference": reference})
    await _show_outcome(app, order, status)
    return web.json_response(order)


async def _show_outcome(app: web.Application, order: dict[str, Any], status: str) -> None:
    """The cart of an order whose payment was reported: ordered (its lines sold), or open again
    with its holds. Only while the cart still waits for this order's payment."""
    room = await app[ROOMS].get(order["cartId"])
    checkout = plain(room.cart.server.get("checkout") or {})
    if room.cart.status != "checking_out" or checkout.get("orderId") != order["id"]:
        return
    paid = status == "paid"
    if paid:
        await app[STORE].put_record("cart-closed", order["cartId"], {"status": "ordered", "orderId": order["id"]})
    else:
        room.want_holds(set(room.cart.lines.keys()))  # the holds stay; their clocks start again on edits

    def settle(cart: CartDoc) -> None:
        cart.server["status"] = "ordered" if paid else "open"
        cart.server["checkout"] = {**checkout, "state": order["state"]}
        holds = cart.server.get("holds")
        for line in order["lines"] if paid and holds is not None else ():
            holds[line["lineId"]] = {"status": "sold", "qty": line["qty"], "expiresAt": None}
    await room.write(settle)


async def _sell(app: web.Application, room: Room, order: dict[str, Any]) -> dict[str, int]:
    """Sells the order's lines in the stock authority, never from what the cart doc shows: a hold
    that ran out is taken again from available stock in the same step. Without enough stock
    nothing is sold, the order stays `awaiting_payment` (409 `out_of_stock`) and the cart shows
    what is still held: the platform refunds (payment `failed` reopens the cart) or reports `paid`
    again once restocked."""
    stock, cart_id = app[STOCK], order["cartId"]
    wants = {line["lineId"]: (line["sku"], line["qty"]) for line in order["lines"] if line["qty"] > 0}
    window = int((time.time() + app[ROOMS].config.hold_ttl_seconds) * 1000)
    try:
        return await stock.sell(cart_id, wants, window)
    except StockError as exc:
        if exc.code != "out_of_stock":
            raise
        await room.show_holds(await stock.holds_of(cart_id))
        lines = ", ".join(f"{line} ({wants[line][0]})" for line in exc.lines)
        raise ApiError(409, "out_of_stock", f"no longer held and not in stock: {lines}; nothing was sold and the "
                       "order is still awaiting_payment (report failed to refund, or paid again once restocked)"
                       ) from None


@api.add("POST", "/api/orders/{orderId}/status", "Move an order on: dispatched, delivered, cancelled",
         auth="admin", errors=(404, 409), result=ORDER,
         body={"oneOf": [obj(("status",), status={"enum": ["dispatched"]}, tracking=TRACKING),
                         obj(("status",), status={"enum": ["delivered", "cancelled"]}, tracking={"type": "null"})]})
async def order_status(request: web.Request) -> web.Response:
    who = _admin(request)
    body = await json_body(request)
    target, extra = body.get("status"), {}
    if body.get("tracking") is not None:
        if target != "dispatched":
            raise ApiError(400, "bad_tracking", "tracking goes with dispatched")
        try:
            extra["tracking"] = orders.tracking(body["tracking"])
        except orders.BadOrderInput as exc:
            raise ApiError(400, exc.code, str(exc)) from None
    app = request.app
    async with busy_as_409(app[STORE], f"order:{request.match_info['orderId']}"):
        order = await _order(request)
        if target not in TRANSITIONS.get(order["state"], set()):
            raise ApiError(409, "bad_transition", f"an order that is {order['state']} cannot become {target}")
        if target == "cancelled":
            await _cancel(app, order)
        return web.json_response(await _move(app, order, target, who.sub, **extra))


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


@api.add("GET", "/api/orders/{orderId}", "An order", errors=(404,), result=ORDER,
         auth="its customer, admin, and whoever may open its cart (operator after a lookup, assistant, kiosk)")
async def get_order(request: web.Request) -> web.Response:
    who = auth.bearer(request)
    order = await _order(request)
    if not await may_see_order(request.app[STORE], who, order):
        raise ApiError(403, "forbidden", "not your order")
    return web.json_response(order)
