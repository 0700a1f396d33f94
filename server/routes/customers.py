"""Customers over HTTP: profile, order history and favourites."""
from __future__ import annotations

from aiohttp import web

from ...crdt.details import EMAIL
from .. import profiles
from ..errors import json_body
from ..guard import Rule, caller, itself, role, sees_customer
from ..openapi import STRING, api, obj, param
from ..order_records import LIMIT, SINCE
from ..services import SERVICES

SKU_LIST = {"type": "array", "items": STRING}
VIEWER = Rule("the customer, an assistant helping them, operator (records a lookup), admin", (sees_customer,))
PROFILE_EDITOR = Rule("the customer, admin", (itself("customerId", "customer", "only the customer or an admin changes a profile"),))
SEARCHER = Rule("admin, operator", (role("operator", "admin", message="admins and operators search customers"),))
NULLABLE = {"type": ["string", "null"]}
CUSTOMER = obj(("id", "name", "email", "orders", "spent", "lastOrderAt"), id=STRING, name=NULLABLE, email=NULLABLE,
               phone=NULLABLE, marketingConsent={"type": "boolean"}, orders={"type": "integer"},
               spent={"type": "integer"}, lastOrderAt={"type": ["integer", "null"]})


def nullable(most: int) -> dict:
    return {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": most}]}


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


@api.add("PUT", "/api/customers/{customerId}", "Set profile fields (those given; null clears one)",
         auth=PROFILE_EDITOR, result=CUSTOMER,
         body={**obj(name=nullable(profiles.PROFILE_LIMITS["name"]),
                     email={"anyOf": [{"type": "null"}, {"type": "string", "maxLength": profiles.PROFILE_LIMITS["email"],
                                                         "pattern": EMAIL.pattern}]},
                     phone=nullable(profiles.PROFILE_LIMITS["phone"]), marketingConsent={"type": "boolean"}),
               "additionalProperties": False})
async def put_customer(request: web.Request) -> web.Response:
    change = profiles.profile_update(await json_body(request))
    index = request.app[SERVICES].index
    return web.json_response(await index.put_customer(request.match_info["customerId"], change))


@api.add("GET", "/api/customers", "Find customers: by name/email/phone, products or a category bought, since a date",
         auth=SEARCHER, result=obj(("customers", "next"), customers={"type": "array", "items": CUSTOMER}, next=NULLABLE),
         query={"q": param("words that start the name, email or phone (an email whole; a phone number's digits)",
                           {"type": "string", "maxLength": profiles.MAX_QUERY_CHARS}),
                "bought": param("SKUs (comma-separated): paid orders with any of them",
                                {"type": "string", "maxLength": profiles.MAX_BOUGHT_CHARS}),
                "category": param("a catalog category", {"type": "string", "maxLength": profiles.MAX_NAME_CHARS}),
                "since": param("those purchases (or, alone, the last order) at or after", SINCE),
                "limit": param("page size", LIMIT),
                "cursor": param("the `next` of the page before",
                                {"type": "string", "maxLength": profiles.MAX_CURSOR_CHARS})})
async def search_customers(request: web.Request) -> web.Response:
    page = await request.app[SERVICES].index.search_customers(profiles.customer_query(request.query))
    return web.json_response({"customers": page.items, "next": page.next})
