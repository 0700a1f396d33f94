"""The event feeds over websocket and Server-Sent Events: /ws/admin and /api/admin/events (the shop floor),
/ws/me and /api/me/events (a customer's own), /ws/orders and /api/orders/events (one customer's orders,
for the staff serving them)."""
from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp_sse import sse_response

from ..bus import following
from ..errors import ApiError
from .. import profiles
from ..auth import Identity
from ..feeds import ORDER_EVENTS, end_code, pump
from ..guard import Rule, caller, role
from ..openapi import EVENTS, SSE, api
from ..refusals import Refused
from ..services import SERVICES
from ..sockets import LimitedSocket, close_at_expiry, close_ws
from .stock import drain_incoming, endpoint_of

ADMIN_FEED = Rule("admin", (role("admin", message="the shop floor feed is for admins"),), token_in_query=True)
OWN_FEED = Rule("customer", (role("customer", message="this feed is a customer's own"),), token_in_query=True)
_FOLLOWED: web.RequestKey[str | None] = web.RequestKey("livecart.orders_followed", object)  # type: ignore[arg-type]


async def follows_orders(request: web.Request, who: Identity) -> None:
    """Whose orders the caller may follow: whose it may list (`GET /api/orders?customer=`)."""
    request[_FOLLOWED] = await profiles.orders_customer(request.app[SERVICES].store, who, request.query.get("customer"))


ORDER_FEED = Rule("as GET /api/orders: admin; a customer its own; operator for a customer it looked up; "
                  "assistant for one it serves; kiosk for the customer signed in at it", (follows_orders,),
                  token_in_query=True)


# -- event feeds: the shop floor, a customer's own, a customer's orders ---------------------------

def _whose(rule: Rule, request: web.Request) -> tuple[str | None, frozenset[str] | None]:
    """Whose events the admitted reader gets (None: the whole shop), and of which types (None: all)."""
    if rule is ORDER_FEED:
        return request[_FOLLOWED], ORDER_EVENTS
    return (None if rule is ADMIN_FEED else caller(request).sub), None


def _role(rule: Rule, request: web.Request) -> str | None:
    """What the metrics count the reader as: staff following a customer's orders by its own role."""
    return caller(request).role if rule is ORDER_FEED else None


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
        whose, types = _whose(rule, request)
        sub = feed.subscribe(whose, endpoint_of(request), types, _role(rule, request))
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
    whose, types = _whose(rule, request)
    sub = feed.subscribe(whose, endpoint_of(request), types, _role(rule, request))
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


async def orders_socket(request: web.Request) -> web.StreamResponse:
    """GET /ws/orders?customer=&token=: order.created and order.status of one customer's orders (the
    staff pages' order history follows it)."""
    return await _event_socket(request, ORDER_FEED)


@api.add("GET", "/api/admin/events", "The shop-floor feed as Server-Sent Events (?token= works too)",
         auth=ADMIN_FEED, media=SSE, result=EVENTS)
async def admin_events(request: web.Request) -> web.StreamResponse:
    return await _event_stream(request, ADMIN_FEED)


@api.add("GET", "/api/me/events", "A customer's own feed as Server-Sent Events (?token= works too)",
         auth=OWN_FEED, media=SSE, result=EVENTS)
async def me_events(request: web.Request) -> web.StreamResponse:
    return await _event_stream(request, OWN_FEED)


@api.add("GET", "/api/orders/events", "One customer's order events as Server-Sent Events (?token= works too)",
         auth=ORDER_FEED, media=SSE, result=EVENTS, query={"customer": "customer id (an admin without it: every order)"})
async def order_events(request: web.Request) -> web.StreamResponse:
    return await _event_stream(request, ORDER_FEED)
