"""Customers over HTTP: profile, order history and favourites."""
from __future__ import annotations

from aiohttp import web

from ..guard import Rule, caller, itself, sees_customer
from ..openapi import STRING, api, obj
from ..services import SERVICES

SKU_LIST = {"type": "array", "items": STRING}
VIEWER = Rule("the customer, an assistant helping them, operator (records a lookup), admin", (sees_customer,))
THE_CUSTOMER = Rule("the customer, admin", (itself("customerId", "customer", "only the customer changes their favourites"),))


@api.add("GET", "/api/customers/{customerId}", "Profile: favourites, recent orders, suggestions", auth=VIEWER,
         result=obj(("id", "favourites", "recentOrders", "suggestions", "carts"), id=STRING, favourites=SKU_LIST,
                    recentOrders={"type": "array"}, suggestions=SKU_LIST, carts={"type": "array"}))
async def profile(request: web.Request) -> web.Response:
    customers = request.app[SERVICES].customers
    return web.json_response(await customers.profile(caller(request), request.match_info["customerId"]))


@api.add("GET", "/api/customers/{customerId}/orders", "Order history, newest first", auth=VIEWER,
         result=obj(("orders",), orders={"type": "array"}))
async def orders(request: web.Request) -> web.Response:
    customers = request.app[SERVICES].customers
    return web.json_response({"orders": await customers.orders(caller(request), request.match_info["customerId"])})


async def _favourites(request: web.Request, add: bool) -> web.Response:
    customers = request.app[SERVICES].customers
    favourites = await customers.favourite(request.match_info["customerId"], request.match_info["sku"], add)
    return web.json_response({"favourites": favourites})


@api.add("PUT", "/api/customers/{customerId}/favourites/{sku}", "Add a favourite", auth=THE_CUSTOMER,
         errors=(404,), result=obj(("favourites",), favourites=SKU_LIST))
async def add_favourite(request: web.Request) -> web.Response:
    return await _favourites(request, add=True)


@api.add("DELETE", "/api/customers/{customerId}/favourites/{sku}", "Remove a favourite",
         auth=THE_CUSTOMER, result=obj(("favourites",), favourites=SKU_LIST))
async def remove_favourite(request: web.Request) -> web.Response:
    return await _favourites(request, add=False)
