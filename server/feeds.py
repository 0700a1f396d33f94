"""Live JSON feeds over websocket and Server-Sent Events: stock per SKU, the shop floor (admin), a customer's own."""
from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Awaitable, Callable, Hashable

import orjson
from aiohttp import WSCloseCode, web
from aiohttp_sse import sse_response

from . import auth, logs
from .appkeys import CONFIG, EVENTS, FEEDS, ROOMS, STOCK
from .bus import Bus, following
from .errors import ApiError
from .sockets import LimitedSocket, close_at_expiry, close_ws

MAX_SKUS = 500


class Reader:
    """One feed reader's mailbox: `next()` waits for messages; None once the feed is closed."""

    def __init__(self) -> None:
        self.closed = False
        self._wake = asyncio.Event()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def next(self) -> list[dict[str, Any]] | None:
        await self._wake.wait()
        self._wake.clear()
        return None if self.closed else self._take()

    def _take(self) -> list[dict[str, Any]]:
        raise NotImplementedError


class Subscriber(Reader):
    """A stock reader. Pending messages are keyed, so a slow reader gets the latest
    value per key instead of a growing backlog: the actor never waits for it."""

    def __init__(self, keys: frozenset[str]) -> None:
        super().__init__()
        self.keys = keys
        self._pending: dict[Hashable, dict[str, Any]] = {}

    def push(self, key: Hashable, message: dict[str, Any]) -> None:
        self._pending.pop(key, None)  # re-insert: keep arrival order of the latest values
        self._pending[key] = message
        self._wake.set()

    def _take(self) -> list[dict[str, Any]]:
        batch, self._pending = list(self._pending.values()), {}
        return batch


class StockFeed:
    """Who watches which SKU in this process; fans availability changes out to them.

    A change notice (from any process, via the bus) only says which SKUs moved: the
    feed then reads the current level from the stock authority. Notices from several
    processes may arrive out of order, but a read made after the last notice is the
    latest truth, so the last value a viewer gets is always right.
    """

    def __init__(self, read_levels: Callable[[list[str]], Awaitable[dict[str, Any]]] | None = None) -> None:
        self.by_sku: dict[str, set[Subscriber]] = {}
        self._read_levels = read_levels
        self._stale: set[str] = set()
        self._refreshing: asyncio.Future[None] | None = None

    def changed(self, levels: dict[str, int]) -> None:
        """Bus handler: these SKUs changed somewhere; refresh the ones watched here."""
        if self._read_levels is None:
            self.publish_levels(levels)
            return
        self._stale.update(sku for sku in levels if sku in self.by_sku)
        if self._stale and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.ensure_future(self._refresh())

    async def _refresh(self) -> None:
        assert self._read_levels is not None
        while self._stale:
            skus, self._stale = sorted(self._stale), set()
            try:
                levels = await self._read_levels(skus)
            except Exception:  # the authority is away: the next change notice tries again
                return
            self.publish_levels({sku: level.available for sku, level in levels.items()})

    def subscribe(self, skus: frozenset[str]) -> Subscriber:
        sub = Subscriber(skus)
        for sku in skus:
            self.by_sku.setdefault(sku, set()).add(sub)
        self._announce_viewers(skus)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        for sku in sub.keys:
            watchers = self.by_sku.get(sku)
            if watchers is not None:
                watchers.discard(sub)
                if not watchers:
                    del self.by_sku[sku]
        self._announce_viewers(sub.keys)

    def close(self) -> None:
        """Server shutdown: every reader's pump ends."""
        for watchers in self.by_sku.values():
            for sub in watchers:
                sub.close()

    def viewers(self, sku: str) -> int:
        return len(self.by_sku.get(sku, ()))

    def publish_levels(self, available: dict[str, int]) -> None:
        at = int(time.time() * 1000)
        for sku, value in available.items():
            message = {"sku": sku, "available": value, "at": at}
            for sub in self.by_sku.get(sku, ()):
                sub.push(("available", sku), message)

    def _announce_viewers(self, skus: frozenset[str]) -> None:
        for sku in skus:
            message = {"sku": sku, "viewers": self.viewers(sku)}
            for sub in self.by_sku.get(sku, ()):
                sub.push(("viewers", sku), message)


def _bus(request: web.Request) -> Bus:
    return request.app[ROOMS].bus


def _skus(request: web.Request) -> frozenset[str]:
    skus = frozenset(s for s in request.query.get("skus", "").split(",") if s)
    if not skus or len(skus) > MAX_SKUS:
        raise web.HTTPBadRequest(reason=f"give 1..{MAX_SKUS} SKUs as ?skus=a,b")
    return skus


async def _initial(request: web.Request, sub: Subscriber) -> None:
    at = int(time.time() * 1000)
    for sku, level in (await request.app[STOCK].levels(sub.keys)).items():
        sub.push(("available", sku), {"sku": sku, "available": level.available, "at": at})


def shop_event(bus: Bus, type_: str, **data: Any) -> None:
    """An event for the shop floor (every admin reader, in every process)."""
    event = {"type": type_, "at": int(time.time() * 1000), **data}
    logs.shop_event(event)
    bus.publish_event("events", event)


def customer_event(bus: Bus, customer_id: str, type_: str, *, shop: bool = True, **data: Any) -> None:
    """An event for one customer's own feed (and, with `shop`, the shop floor too)."""
    event = {"type": type_, "at": int(time.time() * 1000), "customerId": customer_id, "shop": shop, **data}
    logs.shop_event(event)
    bus.publish_event("events", event)


async def pump(sub: Reader, send: Callable[[str], Awaitable[Any]], gone: Awaitable[Any]) -> None:
    """Sends a subscriber's messages until the reader is gone or the feed closes."""
    gone_task = asyncio.ensure_future(gone)
    try:
        while True:
            batch_task = asyncio.ensure_future(sub.next())
            await asyncio.wait({batch_task, gone_task}, return_when=asyncio.FIRST_COMPLETED)
            if gone_task.done():
                batch_task.cancel()
                return
            batch = batch_task.result()
            if batch is None:
                return
            for message in batch:
                await send(orjson.dumps(message).decode())
    except (ConnectionError, RuntimeError):
        pass  # the reader went away mid-send
    finally:
        gone_task.cancel()


async def _drain_incoming(ws: web.WebSocketResponse) -> None:
    async for _ in ws:  # feed readers only listen; what they send is ignored
        pass


async def stock_socket(request: web.Request) -> web.StreamResponse:
    """GET /ws/stock?skus=a,b: `{sku, available, at}` on every change, `{sku, viewers}` as they come and go."""
    skus = _skus(request)
    ws = LimitedSocket(request, request.app[CONFIG].max_message_bytes, heartbeat=30.0)
    await ws.prepare(request)
    feed = request.app[FEEDS]
    sub = feed.subscribe(skus)
    try:
        async with following(_bus(request), "stock"):  # before the first read: no change after it is missed
            await _initial(request, sub)
            await pump(sub, ws.send_str, _drain_incoming(ws))
    finally:
        feed.unsubscribe(sub)
        await ws.close(code=_end_code(sub), message=_end_reason(sub))
    return ws


async def stock_events(request: web.Request) -> web.StreamResponse:
    """GET /api/stock/events?skus=a,b: the same feed as Server-Sent Events."""
    skus = _skus(request)
    feed = request.app[FEEDS]
    sub = feed.subscribe(skus)
    try:
        async with following(_bus(request), "stock"):
            await _initial(request, sub)
            async with sse_response(request) as sse:
                await pump(sub, sse.send, sse.wait())
    finally:
        feed.unsubscribe(sub)
    return sse


# -- event feeds: /ws/admin and /ws/me --------------------------------------------------------

EVENT_BACKLOG = 500


class EventSubscriber(Reader):
    """Events cannot be coalesced, so a reader that falls behind loses the oldest and is told
    how many with a `{"type": "gap", "dropped": n}` marker: carts never wait for it."""

    def __init__(self, customer_id: str | None) -> None:
        super().__init__()
        self.customer_id = customer_id  # None: the whole shop (admin)
        self._queue: deque[dict[str, Any]] = deque()
        self._dropped = 0

    def push(self, event: dict[str, Any]) -> None:
        if len(self._queue) >= EVENT_BACKLOG:
            self._queue.popleft()
            self._dropped += 1
        self._queue.append(event)
        self._wake.set()

    def _take(self) -> list[dict[str, Any]]:
        batch = list(self._queue)
        self._queue.clear()
        if self._dropped:
            batch.insert(0, {"type": "gap", "dropped": self._dropped})
            self._dropped = 0
        return batch


class EventFeed:
    """Admin readers get every shop event; a customer gets the events addressed to them."""

    def __init__(self) -> None:
        self.subscribers: set[EventSubscriber] = set()

    def subscribe(self, customer_id: str | None) -> EventSubscriber:
        sub = EventSubscriber(customer_id)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: EventSubscriber) -> None:
        self.subscribers.discard(sub)

    def deliver(self, event: dict[str, Any]) -> None:
        """Bus handler: `customerId` set → that customer's readers; `shop` → admin readers."""
        customer = event.get("customerId")
        for sub in self.subscribers:
            if (sub.customer_id is None and event.get("shop", True)) or (customer and sub.customer_id == customer):
                sub.push(event)

    def close(self) -> None:
        for sub in self.subscribers:
            sub.close()


def _identity(request: web.Request) -> auth.Identity:
    """Bearer header, or ?token= (browsers cannot set headers on websockets and EventSource)."""
    token = request.query.get("token")
    if token is None:
        return auth.bearer(request)
    try:
        return auth.verify_for(request.app, token)
    except auth.TokenError as exc:
        raise ApiError(401, "unauthorized", str(exc)) from None


def _reader(request: web.Request, admin: bool) -> tuple[auth.Identity, str | None]:
    """Who reads, and whose events (None: the whole shop)."""
    who = _identity(request)
    if admin and not who.is_admin:
        raise ApiError(403, "forbidden", "the shop floor feed is for admins")
    if not admin and who.role != "customer":
        raise ApiError(403, "forbidden", "this feed is a customer's own")
    return who, None if admin else who.sub


async def _event_socket(request: web.Request, admin: bool) -> web.StreamResponse:
    ws = LimitedSocket(request, request.app[CONFIG].max_message_bytes, heartbeat=30.0)
    try:
        who, customer = _reader(request, admin)
    except ApiError as exc:
        await ws.prepare(request)
        await ws.close(code=4401 if exc.status == 401 else 4403, message=exc.message.encode()[:120])
        return ws
    feed = request.app[EVENTS]
    async with following(_bus(request), "events"):  # before the handshake: a connected reader misses nothing
        await ws.prepare(request)
        sub = feed.subscribe(customer)
        expiry = close_at_expiry(who, lambda code, reason: asyncio.ensure_future(close_ws(ws, code, reason)))
        try:
            await pump(sub, ws.send_str, _drain_incoming(ws))
        finally:
            if expiry is not None:
                expiry.cancel()
            feed.unsubscribe(sub)
            await ws.close(code=_end_code(sub), message=_end_reason(sub))
    return ws


def _end_code(sub: Reader) -> int:
    """1012 (service restart) when the server is going away: the client reconnects by itself."""
    return WSCloseCode.SERVICE_RESTART if sub.closed else WSCloseCode.OK


def _end_reason(sub: Reader) -> bytes:
    return b"server restarting" if sub.closed else b""


async def _event_stream(request: web.Request, admin: bool) -> web.StreamResponse:
    who, customer = _reader(request, admin)
    feed = request.app[EVENTS]
    sub = feed.subscribe(customer)
    expiry = close_at_expiry(who, lambda code, reason: sub.close())  # the stream ends with its token
    try:
        async with following(_bus(request), "events"):
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
    return await _event_socket(request, admin=True)


async def me_socket(request: web.Request) -> web.StreamResponse:
    """GET /ws/me?token=: the customer's own order status changes and discounts offered."""
    return await _event_socket(request, admin=False)


async def admin_events(request: web.Request) -> web.StreamResponse:
    return await _event_stream(request, admin=True)


async def me_events(request: web.Request) -> web.StreamResponse:
    return await _event_stream(request, admin=False)
