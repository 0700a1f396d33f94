"""Checkout and orders over HTTP: the checkout step, checking out, the platform's payment report, an admin's order moves."""
from __future__ import annotations

from aiohttp import web

from .. import auth, order_records, profiles
from ..errors import ApiError, json_body
from ..guard import ADMINS_ONLY, CART_OPENER, Rule, admin, caller, cart, order, sees_order
from ..openapi import INTEGER, STRING, api, obj, param, string
from ..orders import STEPS
from ..services import SERVICES

CHECKED_OUT = obj(("orderId", "state", "total"), orderId=STRING, state=STRING, total=INTEGER)
ORDER = obj(("id", "cartId", "customerId", "state", "lines", "total", "history"), id=STRING, cartId=STRING,
            customerId=STRING, state=STRING, lines={"type": "array"}, total=INTEGER, history={"type": "array"})
TRACKING = {**obj(("carrier", "number", "url"), carrier=string(1, 100, pattern=order_records.FILLED),
                  number=string(1, 100, pattern=order_records.FILLED),
                  url=string(1, 2000, pattern=order_records.TRACKING_URL)),
            "additionalProperties": False}
PAGE = obj(("orders", "next"), orders={"type": "array", "items": {"type": "object"}},
           next={"type": ["string", "null"]})
_WHOSE: web.RequestKey[str | None] = web.RequestKey("livecart.orders_of", object)  # type: ignore[arg-type]


async def lists_orders(request: web.Request, who: auth.Identity) -> None:
    """Whose orders the caller may list (profiles.orders_customer), kept for the handler."""
    request[_WHOSE] = await profiles.orders_customer(request.app[SERVICES].store, who, request.query.get("customer"))


ORDER_LISTER = Rule("admin; a customer its own; operator for a customer it looked up; assistant for one it serves; "
                    "kiosk for the customer signed in at it", (lists_orders,))
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
         body={"oneOf": [{**obj(("status",), status={"enum": ["dispatched"]}, tracking=TRACKING),
                          "additionalProperties": False},
                         {**obj(("status",), status={"enum": ["delivered", "cancelled"]}, tracking={"type": "null"}),
                          "additionalProperties": False}]})
async def order_status(request: web.Request) -> web.Response:
    body = await json_body(request)
    unknown = set(body) - {"status", "tracking"}
    if unknown:
        raise ApiError(400, "bad_body", f"unknown field {sorted(unknown)[0]!r} (status, tracking)")
    orders = request.app[SERVICES].orders
    return web.json_response(await orders.move(caller(request), request.match_info["orderId"], body.get("status"),
                                               body.get("tracking")))


@api.add("GET", "/api/orders", "Orders, newest first (stable pages: pass `next` as `cursor`)", result=PAGE,
         auth=ORDER_LISTER,
         query={"status": param("one of these", {"enum": list(order_records.STATUSES)}), "customer": "customer id",
                "since": param("created at or after", order_records.SINCE),
                "limit": param("page size", order_records.LIMIT),
                "cursor": param("the `next` of the page before", {"type": "string", "pattern": order_records.CURSOR})})
async def list_orders(request: web.Request) -> web.Response:
    query = order_records.order_query(request.query, request[_WHOSE])
    page = await request.app[SERVICES].index.list_orders(query)
    return web.json_response({"orders": page.items, "next": page.next})


@api.add("GET", "/api/orders/{orderId}", "An order", errors=(404,), result=ORDER, auth=ORDER_READER)
async def get_order(request: web.Request) -> web.Response:
    return web.json_response(order(request))
