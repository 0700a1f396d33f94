"""Customer records over HTTP: `PUT /api/customers/{id}` (profile) and `GET /api/customers` (search)."""
from __future__ import annotations

from aiohttp import web

from ...crdt.details import EMAIL
from .. import auth, profiles
from ..appkeys import INDEX
from ..errors import ApiError, json_body
from ..openapi import STRING, api, obj, param
from ..orders import LIMIT, SINCE

NULLABLE = {"type": ["string", "null"]}


def nullable(most: int) -> dict:
    return {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": most}]}
CUSTOMER = obj(("id", "name", "email", "orders", "spent", "lastOrderAt"), id=STRING, name=NULLABLE, email=NULLABLE,
               phone=NULLABLE, marketingConsent={"type": "boolean"}, orders={"type": "integer"},
               spent={"type": "integer"}, lastOrderAt={"type": ["integer", "null"]})


@api.add("PUT", "/api/customers/{customerId}", "Set profile fields (those given; null clears one)",
         auth="the customer, admin", result=CUSTOMER,
         body={**obj(name=nullable(profiles.PROFILE_LIMITS["name"]),
                     email={"anyOf": [{"type": "null"}, {"type": "string", "maxLength": profiles.PROFILE_LIMITS["email"],
                                                         "pattern": EMAIL.pattern}]},
                     phone=nullable(profiles.PROFILE_LIMITS["phone"]), marketingConsent={"type": "boolean"}),
               "additionalProperties": False})
async def put_customer(request: web.Request) -> web.Response:
    who, customer_id = auth.bearer(request), request.match_info["customerId"]
    if not (who.is_admin or (who.role == "customer" and who.sub == customer_id)):
        raise ApiError(403, "forbidden", "only the customer or an admin changes a profile")
    try:
        change = profiles.profile_update(await json_body(request))
    except profiles.BadOrderInput as exc:
        raise ApiError(400, exc.code, str(exc)) from None
    return web.json_response(await request.app[INDEX].put_customer(customer_id, change))


@api.add("GET", "/api/customers", "Find customers: by name/email/phone, products or a category bought, since a date",
         auth="admin, operator",
         result=obj(("customers", "next"), customers={"type": "array", "items": CUSTOMER}, next=NULLABLE),
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
    who = auth.bearer(request)
    if not (who.is_admin or who.role == "operator"):
        raise ApiError(403, "forbidden", "admins and operators search customers")
    try:
        query = profiles.customer_query(request.query)
    except profiles.BadOrderInput as exc:
        raise ApiError(400, exc.code, str(exc)) from None
    page = await request.app[INDEX].search_customers(query)
    return web.json_response({"customers": page.items, "next": page.next})
