"""`GET /api/orders`: orders newest first, filtered, a page at a time."""
from __future__ import annotations

from aiohttp import web

from .. import auth, orders, profiles
from ..appkeys import INDEX, STORE
from ..errors import ApiError
from ..openapi import STRING, api, obj, param

PAGE = obj(("orders", "next"), orders={"type": "array", "items": {"type": "object"}},
           next={"type": ["string", "null"]})


@api.add("GET", "/api/orders", "Orders, newest first (stable pages: pass `next` as `cursor`)", result=PAGE,
         auth="admin; a customer its own; operator for a customer it looked up; assistant for one it serves; "
              "kiosk for the customer signed in at it",
         query={"status": param("one of these", {"enum": list(orders.STATUSES)}), "customer": "customer id",
                "since": param("created at or after", orders.SINCE), "limit": param("page size", orders.LIMIT),
                "cursor": param("the `next` of the page before", {"type": "string", "pattern": orders.CURSOR})})
async def list_orders(request: web.Request) -> web.Response:
    who = auth.bearer(request)
    try:
        customer = await profiles.orders_customer(request.app[STORE], who, request.query.get("customer"))
    except PermissionError as exc:
        raise ApiError(403, "forbidden", str(exc)) from None
    try:
        query = orders.order_query(request.query, customer)
    except orders.BadOrderInput as exc:
        raise ApiError(400, exc.code, str(exc)) from None
    page = await request.app[INDEX].list_orders(query)
    return web.json_response({"orders": page.items, "next": page.next})


__all__ = ["list_orders", "STRING"]
