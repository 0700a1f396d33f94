"""The event feeds over websocket and Server-Sent Events: /ws/admin and /api/admin/events (the shop floor),
/ws/me and /api/me/events (a customer's own)."""
from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp_sse import sse_response

from ..bus import following
from ..errors import ApiError
from ..feeds import end_code, pump
from ..guard import Rule, caller, role
from ..openapi import EVENTS, SSE, api
from ..refusals import Refused
from ..services import SERVICES
from ..sockets import LimitedSocket, close_at_expiry, close_ws
from .stock import drain_incoming, endpoint_of

ADMIN_FEED = Rule("admin", (role("admin", message="the shop floor feed is for admins"),), token_in_query=True)
OWN_FEED = Rule("customer", (role("customer", message="this feed is a customer's own"),), token_in_query=True)


# -- event feeds: the shop floor and a customer's own ---------------------------------------------

def _whose(rule: Rule, request: web.Request) -> str | None:
    """Whose events the admitted reader gets (None: the whole shop)."""
    return None if rule is ADMIN_FEED else caller(request).sub


async def _event_socket(request: web.Request, rule: Rule) -> web.StreamResponse:
    services = request.app[SERVICES]
    ws = LimitedSocket(request, services.config.max_message_bytes, heartbeat=30.0)
    try:
        await rule(request)  # websockets are no api routes: the same rule, refused with a close code
    except (ApiError, Refused) as exc:
        await ws.prepare(request)
        code = 4401 if isinstance(exc, ApiError) and exc.status == 401 else 4403
        await ws.close(code=code, message=exc.message.encode()[:120])
        return ws
    who, feed = caller(request), services.events
    async with following(services.bus, "events"):  # before the handshake: a connected reader misses nothing
        await ws.prepare(request)
        sub = feed.subscribe(_whose(rule, request), endpoint_of(request))
        expiry = close_at_expiry(who, lambda code, reason: asyncio.ensure_future(close_ws(ws, code, reason)))
        try:
            await pump(sub, ws.send_str, drain_incoming(ws))
        finally:
            if expiry is not None:
                expiry.cancel()
            feed.unsubscribe(sub)
            code, reason = end_code(sub)
            await ws.close(code=code, message=reason)
    return ws


async def _event_stream(request: web.Request, rule: Rule) -> web.StreamResponse:
    services = request.app[SERVICES]
    feed = services.events
    sub = feed.subscribe(_whose(rule, request), endpoint_of(request))
    expiry = close_at_expiry(caller(request), lambda code, reason: sub.close())  # the stream ends with its token
    try:
        async with following(services.bus, "events"):
            async with sse_response(request) as sse:
                await pump(sub, sse.send, sse.wait())
    finally:
        if expiry is not None:
            expiry.cancel()
        feed.unsubscribe(sub)
    return sse


async def admin_socket(request: web.Request) -> web.StreamResponse:
    """GET /ws/admin?token=: cart.created, cart.line_added, cart.line_removed, cart.presence,
    checkout.step, order.created, order.status."""
    return await _event_socket(request, ADMIN_FEED)


async def me_socket(request: web.Request) -> web.StreamResponse:
    """GET /ws/me?token=: the customer's own order status changes and discounts offered."""
    return await _event_socket(request, OWN_FEED)


@api.add("GET", "/api/admin/events", "The shop-floor feed as Server-Sent Events (?token= works too)",
         auth=ADMIN_FEED, media=SSE, result=EVENTS)
async def admin_events(request: web.Request) -> web.StreamResponse:
    return await _event_stream(request, ADMIN_FEED)


@api.add("GET", "/api/me/events", "A customer's own feed as Server-Sent Events (?token= works too)",
         auth=OWN_FEED, media=SSE, result=EVENTS)
async def me_events(request: web.Request) -> web.StreamResponse:
    return await _event_stream(request, OWN_FEED)
