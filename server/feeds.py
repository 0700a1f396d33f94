"""Live JSON feeds (websocket and Server-Sent Events): stock availability and viewers per SKU."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, Hashable

import orjson
from aiohttp import web
from aiohttp_sse import sse_response

from .appkeys import FEEDS, STOCK

MAX_SKUS = 500


class Subscriber:
    """One feed reader. Pending messages are keyed, so a slow reader gets the latest
    value per key instead of a growing backlog: the actor never waits for it."""

    def __init__(self, keys: frozenset[str]) -> None:
        self.keys = keys
        self.closed = False
        self._pending: dict[Hashable, dict[str, Any]] = {}
        self._wake = asyncio.Event()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    def push(self, key: Hashable, message: dict[str, Any]) -> None:
        self._pending.pop(key, None)  # re-insert: keep arrival order of the latest values
        self._pending[key] = message
        self._wake.set()

    async def next(self) -> list[dict[str, Any]] | None:
        """The pending messages, oldest first; None once the feed is closed."""
        await self._wake.wait()
        self._wake.clear()
        if self.closed:
            return None
        batch, self._pending = list(self._pending.values()), {}
        return batch


class StockFeed:
    """Who watches which SKU in this process; fans availability changes out to them."""

    def __init__(self) -> None:
        self.by_sku: dict[str, set[Subscriber]] = {}

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


def _skus(request: web.Request) -> frozenset[str]:
    skus = frozenset(s for s in request.query.get("skus", "").split(",") if s)
    if not skus or len(skus) > MAX_SKUS:
        raise web.HTTPBadRequest(reason=f"give 1..{MAX_SKUS} SKUs as ?skus=a,b")
    return skus


async def _initial(request: web.Request, sub: Subscriber) -> None:
    at = int(time.time() * 1000)
    for sku, level in (await request.app[STOCK].levels(sub.keys)).items():
        sub.push(("available", sku), {"sku": sku, "available": level.available, "at": at})


async def pump(sub: Subscriber, send: Callable[[str], Awaitable[Any]], gone: Awaitable[Any]) -> None:
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
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    feed = request.app[FEEDS]
    sub = feed.subscribe(skus)
    await _initial(request, sub)
    try:
        await pump(sub, ws.send_str, _drain_incoming(ws))
    finally:
        feed.unsubscribe(sub)
        await ws.close()
    return ws


async def stock_events(request: web.Request) -> web.StreamResponse:
    """GET /api/stock/events?skus=a,b: the same feed as Server-Sent Events."""
    skus = _skus(request)
    feed = request.app[FEEDS]
    sub = feed.subscribe(skus)
    await _initial(request, sub)
    try:
        async with sse_response(request) as sse:
            await pump(sub, sse.send, sse.wait())
    finally:
        feed.unsubscribe(sub)
    return sse
