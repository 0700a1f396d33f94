"""Anonymous sessions: a token for a shopper who has not signed in."""
from __future__ import annotations

from aiohttp import web

from .. import auth
from ..ids import new_id
from ..openapi import STRING, api, obj
from ..services import SERVICES

ANONYMOUS_TTL = 30 * 86400


@api.add("POST", "/api/sessions/anonymous", "A token for an anonymous shopper", auth=None, ok=201,
         result=obj(("token", "customerId"), token=STRING, customerId=STRING))
async def anonymous_session(request: web.Request) -> web.Response:
    customer_id = new_id("anon-")
    token = auth.mint(request.app[SERVICES].config.jwt_secret, customer_id, "customer", ttl_seconds=ANONYMOUS_TTL)
    return web.json_response({"token": token, "customerId": customer_id}, status=201)
