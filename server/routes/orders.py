"""Checkout and orders over HTTP: the checkout step, checking out, the platform's payment report, an admin's order moves."""
from __future__ import annotations

from aiohttp import web

from ..errors import ApiError, json_body
from ..guard import ADMINS_ONLY, CART_OPENER, Rule, admin, caller, cart, order, sees_order
from ..openapi import INTEGER, STRING, api, obj
from ..orders import STEPS
from ..services import SERVICES

CHECKED_OUT = obj(("orderId", "state", "total"), orderId=STRING, state=STRING, total=INTEGER)
ORDER = obj(("id", "cartId", "customerId", "state", "lines", "total", "history"), id=STRING, cartId=STRING,
            customerId=STRING, state=STRING, lines={"type": "array"}, total=INTEGER, history={"type": "array"})
PLATFORM = admin("admins only", doc="admin (the host platform)")
ORDER_READER = Rule("its customer, admin, and whoever may open its cart (operator after a lookup, assistant, kiosk)",
                    (sees_order,))


@api.add("POST", "/api/carts/{cartId}/checkout/step", "Record the checkout step (kept across visits and devices)",
         auth=CART_OPENER, errors=(404, 409), body=obj(("step",), step={"enum": list(STEPS)}),
         result=obj(("cartId", "step"), cartId=STRING, step={"enum": list(STEPS)}))
async def checkout_step(request: web.Request) -> web.Response:
    step = (await json_body(request)).get("step")
    if step not in STEPS:
        raise ApiError(400, "bad_step", f"step is one of {', '.join(STEPS)}")
    record = cart(request)
    await request.app[SERVICES].orders.step(caller(request), record, step)
    return web.json_response({"cartId": record.id, "step": step})


@api.add("POST", "/api/carts/{cartId}/checkout", "Check out: re-price on the server, freeze, create the order",
         auth=CART_OPENER, ok=201, errors=(404, 409),
         result=CHECKED_OUT, also={200: CHECKED_OUT})  # 200: the cart had checked out already, the same order
async def checkout(request: web.Request) -> web.Response:
    done = await request.app[SERVICES].orders.checkout(caller(request), cart(request))
    return web.json_response(done.to_json(), status=201 if done.created else 200)


@api.add("POST", "/api/orders/{orderId}/payment", "The platform reports a payment (idempotent)",
         auth=PLATFORM, errors=(404, 409),
         body=obj(("status",), status={"enum": ["paid", "failed"]}, reference={"description": "kept as given"}),
         result=ORDER)
async def payment(request: web.Request) -> web.Response:
    body = await json_body(request)
    status, reference = body.get("status"), body.get("reference")
    if status not in ("paid", "failed"):
        raise ApiError(400, "bad_status", "status is paid or failed")
    orders = request.app[SERVICES].orders
    return web.json_response(await orders.payment(caller(request), request.match_info["orderId"], status, reference))


@api.add("POST", "/api/orders/{orderId}/status", "Move an order on: dispatched, delivered, cancelled",
         auth=ADMINS_ONLY, errors=(404, 409), result=ORDER,
         body=obj(("status",), status={"enum": ["dispatched", "delivered", "cancelled"]}))
async def order_status(request: web.Request) -> web.Response:
    target = (await json_body(request)).get("status")
    orders = request.app[SERVICES].orders
    return web.json_response(await orders.move(caller(request), request.match_info["orderId"], target))


@api.add("GET", "/api/orders/{orderId}", "An order", errors=(404,), result=ORDER, auth=ORDER_READER)
async def get_order(request: web.Request) -> web.Response:
    return web.json_response(order(request))
