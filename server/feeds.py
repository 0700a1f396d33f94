"""Live JSON feeds (websocket and Server-Sent Events): stock availability and viewers per SKU."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Hashable

import orjson
from aiohttp import WSMsgType, web
from aiohttp_sse import sse_response

from .appkeys import FEEDS, STOCK

MAX_SKUS = 500


class Subscriber:
    """One feed reader. Pending messages are keyed, so a slow reader gets the latest
    value per key instead of a growing backlog: the actor never waits for it."""

    def __init__(self, keys: frozenset[str]) -> None:
        self.keys = keys
        self._pending: dict[Hashable, dict[str, Any]] = {}
        self._wake = asyncio.Event()

    def push(self, key: Hashable, message: dict[str, Any]) -> None:
        self._pending.pop(key, None)  # re-insert: keep arrival order of the latest values
        self._pending[key] = message
        self._wake.set()

    async def next(self) -> list[dict[str, Any]]:
        await self._wake.wait()
        self._wake.clear()
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


def _initial(request: web.Request, sub: Subscriber) -> None:
    at = int(time.time() * 1000)
    for sku, level in request.app[STOCK].levels(sub.keys).items():
        sub.push(("available", sku), {"sku": sku, "available": level.available, "at": at})


async def stock_socket(request: web.Request) -> web.StreamResponse:
    """GET /ws/stock?skus=a,b: `{sku, available, at}` on every change, `{sku, viewers}` as they come and go."""
    skus = _skus(request)
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    feed = request.app[FEEDS]
    sub = feed.subscribe(skus)
    _initial(request, sub)
    sender = asyncio.ensure_future(_pump_ws(ws, sub))
    try:
        async for msg in ws:  # readers only listen; anything they send is ignored
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        sender.cancel()
        feed.unsubscribe(sub)
    return ws


async def _pump_ws(ws: web.WebSocketResponse, sub: Subscriber) -> None:
    try:
        while not ws.closed:
            for message in await sub.next():
                await ws.send_str(orjson.dumps(message).decode())
    except (ConnectionError, RuntimeError):
        pass


async def stock_events(request: web.Request) -> web.StreamResponse:
    """GET /api/stock/events?skus=a,b: the same feed as Server-Sent Events."""
    skus = _skus(request)
    feed = request.app[FEEDS]
    sub = feed.subscribe(skus)
    _initial(request, sub)
    try:
        async with sse_response(request) as sse:
            while sse.is_connected():
                for message in await sub.next():
                    await sse.send(orjson.dumps(message).decode())
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        feed.unsubscribe(sub)
    return sse
