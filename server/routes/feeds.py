"""The event feeds over websocket and Server-Sent Events: /ws/admin and /api/admin/events (the shop floor),
/ws/me and /api/me/events (a customer's own), /ws/orders and /api/orders/events (one customer's orders,
for the staff serving them)."""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from aiohttp import web
from aiohttp_sse import sse_response

from ..bus import following
from ..errors import ApiError
from .. import profiles
from ..auth import Identity
from ..feeds import ORDER_EVENTS, EventSubscriber, end_code, every, pump
from ..guard import Rule, caller, role
from ..openapi import EVENTS, SSE, api
from ..refusals import Refused
from ..services import SERVICES
from ..sockets import LimitedSocket, close_at_expiry, close_ws
from .stock import drain_incoming, endpoint_of

log = logging.getLogger("livecart.feeds")
FORBIDDEN, SERVER_ERROR = 4403, 1011
# An idle order-feed reader's access is read again this often: an operator's lookup runs out, or a rule
# changes, without anyone being told. Before each event it is read anyway; a kiosk's sign-out is announced.
ACCESS_RECHECK_SECONDS = 60.0

ADMIN_FEED = Rule("admin", (role("admin", message="the shop floor feed is for admins"),), token_in_query=True)
OWN_FEED = Rule("customer", (role("customer", message="this feed is a customer's own"),), token_in_query=True)
_FOLLOWED: web.RequestKey[str | None] = web.RequestKey("livecart.orders_followed", object)  # type: ignore[arg-type]


async def follows_orders(request: web.Request, who: Identity) -> None:
    """Whose orders the caller may follow: whose it may list (`GET /api/orders?customer=`)."""
    request[_FOLLOWED] = await profiles.orders_customer(request.app[SERVICES].store, who, request.query.get("customer"))


ORDER_FEED = Rule("as GET /api/orders: admin; a customer its own; operator for a customer it looked up; "
                  "assistant for one it serves; kiosk for the customer signed in at it", (follows_orders,),
                  token_in_query=True)


class AccessEnded(Exception):
    """The reader may no longer have the feed (or it cannot be told now): how its socket closes."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def _still_allowed(rule: Rule, request: web.Request) -> Callable[[], Awaitable[None]] | None:
    """The order feed's access read again (what `GET /api/orders?customer=` would answer now); None for
    the shop floor's and a customer's own feed, whose access is the token's role and lasts as long."""
    if rule is not ORDER_FEED:
        return None
    store, who, asked = request.app[SERVICES].store, caller(request), request.query.get("customer")

    async def check() -> None:
        try:
            await profiles.orders_customer(store, who, asked)
        except Refused as exc:
            raise AccessEnded(FORBIDDEN, f"access ended: {exc.message}") from exc
        except Exception as exc:  # the store is away: nothing unchecked is sent; the client reconnects
            log.warning("order feed: access of %s %s could not be read: %s", who.role, who.sub, exc)
            raise AccessEnded(SERVER_ERROR, "storage failed; reconnect") from exc
    return check


def _subscribe(rule: Rule, request: web.Request) -> tuple[EventSubscriber, Callable[[], None]]:
    """The reader's subscription, and what stops its periodic access checks (the order feed's)."""
    whose, types = _whose(rule, request)
    reader = caller(request).sub if rule is ORDER_FEED else None
    sub = request.app[SERVICES].events.subscribe(whose, endpoint_of(request), types, _role(rule, request), reader)
    return sub, every(ACCESS_RECHECK_SECONDS, sub.poke) if reader is not None else (lambda: None)


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
        sub, stop_checks = _subscribe(rule, request)
        expiry = close_at_expiry(who, lambda code, reason: asyncio.ensure_future(close_ws(ws, code, reason)))
        ended: AccessEnded | None = None
        try:
            await pump(sub, ws.send_str, drain_incoming(ws), allowed=_still_allowed(rule, request))
        except AccessEnded as exc:
            ended = exc
        finally:
            if expiry is not None:
                expiry.cancel()
            stop_checks()
            feed.unsubscribe(sub)
            if ended is not None:
                await close_ws(ws, ended.code, ended.reason)
            else:
                code, reason = end_code(sub)
                await ws.close(code=code, message=reason)
    return ws


async def _event_stream(request: web.Request, rule: Rule) -> web.StreamResponse:
    services = request.app[SERVICES]
    feed = services.events
    sub, stop_checks = _subscribe(rule, request)
    expiry = close_at_expiry(caller(request), lambda code, reason: sub.close())  # the stream ends with its token
    try:
        async with following(services.bus, "events"):
            async with sse_response(request) as sse:
                try:
                    await pump(sub, sse.send, sse.wait(), allowed=_still_allowed(rule, request))
                except AccessEnded:
                    pass  # the stream ends; EventSource reconnects and is refused (403), which it does not retry
    finally:
        if expiry is not None:
            expiry.cancel()
        stop_checks()
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
