"""Stock over HTTP: levels per SKU and their live feed (/api/stock/events, /ws/stock), an admin's on-hand and adjustments."""
from __future__ import annotations

from typing import Awaitable, Callable

import orjson
from aiohttp import WSMsgType, web
from aiohttp_sse import sse_response

from ...crdt.schema import MAX_STOCK
from .. import auth
from ..browsing import BadMessage, Browser, Browsing, UnknownSku
from ..errors import ApiError, json_body
from ..guard import SHOP_ADMIN
from ..bus import following
from ..clock import now_ms
from ..feeds import Subscriber, end_code, pump
from ..openapi import DELTA, EVENTS, NON_EMPTY, ON_HAND, SSE, api, obj, param, string
from ..refusals import int_in
from ..services import SERVICES
from ..stock import Level, StockError
from ..sockets import LimitedSocket, close_ws
from .catalog import LEVEL

MAX_SKUS = 500
SKUS = param("comma-separated SKUs", string(1, pattern="[^,]"), required=True)


async def _stock_call(call: Awaitable[Level]) -> web.Response:
    try:
        level = await call
    except StockError as exc:
        raise ApiError(409 if exc.code == "below_held" else 400, exc.code, str(exc)) from None
    return web.json_response(level.to_json())


def _skus(request: web.Request) -> frozenset[str]:
    skus = frozenset(s for s in request.query.get("skus", "").split(",") if s)
    if not skus or len(skus) > MAX_SKUS:
        raise web.HTTPBadRequest(reason=f"give 1..{MAX_SKUS} SKUs as ?skus=a,b")
    return skus


async def _initial(request: web.Request, sub: Subscriber) -> None:
    at = now_ms()
    for sku, level in (await request.app[SERVICES].stock.levels(sub.keys)).items():
        sub.push(("available", sku), {"sku": sku, "available": level.available, "at": at})


def endpoint_of(request: web.Request) -> str:
    """The route a feed reader came in by, as its pattern (bounded): what its connection is counted under."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


async def drain_incoming(ws: web.WebSocketResponse) -> None:
    async for _ in ws:  # feed readers only listen; what they send is ignored
        pass


async def stock_socket(request: web.Request) -> web.StreamResponse:
    """GET /ws/stock?skus=a,b[&token=]: `{sku, available, at}` on every change, `{sku, viewers}` as
    viewers come and go; the browser says what it views (`view`, `visibility`: server/browsing.py)."""
    skus = _skus(request)
    services = request.app[SERVICES]
    ws = LimitedSocket(request, services.config.max_message_bytes, heartbeat=30.0)
    token = request.query.get("token")
    await services.tokens.prepare(token)  # an identity provider's new key, if need be
    try:
        who = services.tokens.verify(token) if token else None
    except auth.TokenError as exc:
        await ws.prepare(request)
        await close_ws(ws, 4401, str(exc))
        return ws
    await ws.prepare(request)
    feed, browsing = services.stock_feed, services.browsing
    browser = browsing.join(who.sub if who else None)
    sub = feed.subscribe(skus, endpoint_of(request), who.role if who else "anonymous")
    try:
        async with following(services.bus, "stock"):  # before the first read: no change after it is missed
            await _initial(request, sub)
            await pump(sub, ws.send_str, _read_views(ws, browser, browsing),
                       _frame_writer(ws, request, services.config.send_buffer_bytes))
    finally:
        browsing.leave(browser)
        feed.unsubscribe(sub)
        code, reason = end_code(sub)
        await ws.close(code=code, message=reason)
    return ws


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented text websocket frame (RFC 6455 §5.2), as a server sends it."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


def _frame_writer(ws: web.WebSocketResponse, request: web.Request, limit: int) -> Callable[[list[str]], None]:
    """Writes a batch of feed messages as frames in one write: a viewer-count fan-out to thousands
    of storefronts costs a write per storefront, not one per SKU (bench/browsing.py). A reader that
    lets the transport's buffer pass `limit` is cut off (it reconnects and reads the levels again)."""
    def send_all(messages: list[str]) -> None:
        transport = request.transport
        if transport is None or transport.is_closing() or ws.closed or getattr(ws, "refusing", False):
            raise ConnectionError("the reader went away")
        if transport.get_write_buffer_size() > limit:
            transport.abort()
            raise ConnectionError("reader too slow to keep up")
        transport.write(b"".join(text_frame(m.encode()) for m in messages))
    return send_all


async def _read_views(ws: web.WebSocketResponse, browser: Browser, browsing: Browsing) -> None:
    """What a storefront says it views; a bad message closes this socket alone (4400, 4413, 4429)."""
    async for msg in ws:
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            continue
        try:
            browsing.receive(browser, msg.data)
        except UnknownSku as exc:  # a stale catalog is no reason to drop the stock feed: say so, go on
            await ws.send_str(orjson.dumps({"type": "error", "code": "unknown_sku", "message": str(exc),
                                            "sku": exc.sku}).decode())
        except BadMessage as exc:
            await close_ws(ws, exc.code, exc.reason)
            return


async def stock_events(request: web.Request) -> web.StreamResponse:
    """GET /api/stock/events?skus=a,b: the same feed as Server-Sent Events."""
    skus = _skus(request)
    services = request.app[SERVICES]
    feed = services.stock_feed
    sub = feed.subscribe(skus, endpoint_of(request))
    try:
        async with following(services.bus, "stock"):
            await _initial(request, sub)
            async with sse_response(request) as sse:
                await pump(sub, sse.send, sse.wait())
    finally:
        feed.unsubscribe(sub)
    return sse


# `(?!events$)`: the stock feed's own path is not a SKU, so /api/stock/events has only GET (and a 405 says so)
@api.add("PUT", "/api/stock/{sku:(?!events$)[^/]+}", "Set on-hand (never below what carts hold)", auth=SHOP_ADMIN,
         params={"sku": {**NON_EMPTY, "not": {"const": "events"}}}, body=obj(("onHand",), onHand=ON_HAND),
         errors=(405, 409), result=LEVEL)
async def put_stock(request: web.Request) -> web.Response:
    on_hand = int_in(await json_body(request), "onHand", 0, MAX_STOCK, "bad_onHand")
    return await _stock_call(request.app[SERVICES].stock.set_on_hand(request.match_info["sku"], on_hand))


@api.add("POST", "/api/stock/{sku}/adjust", "An in-store sale (-) or a delivery (+)", auth=SHOP_ADMIN,
         body=obj(("delta", "reason"), delta=DELTA, reason=NON_EMPTY), errors=(409,),
         result=LEVEL)
async def adjust_stock(request: web.Request) -> web.Response:
    body = await json_body(request)
    delta = int_in(body, "delta", -MAX_STOCK, MAX_STOCK, "bad_delta")
    if not isinstance(body.get("reason"), str) or not body["reason"]:
        raise ApiError(400, "bad_reason", "say why stock changes: reason (e.g. 'in-store sale')")
    sku, stock = request.match_info["sku"], request.app[SERVICES].stock
    # Deliveries never take on-hand past MAX_STOCK (two at once may pass it by one delta, which
    # still leaves every figure far below what JavaScript holds exactly).
    if delta > 0 and (await stock.levels([sku]))[sku].on_hand + delta > MAX_STOCK:
        raise ApiError(400, "bad_delta", f"on-hand may not go past {MAX_STOCK}")
    return await _stock_call(stock.adjust(sku, delta))


@api.add("GET", "/api/stock", "On-hand, held and available per SKU", auth=None,
         query={"skus": SKUS}, result={"type": "object", "additionalProperties": LEVEL})
async def get_stock(request: web.Request) -> web.Response:
    skus = [s for s in request.query.get("skus", "").split(",") if s]
    if not skus:
        raise ApiError(400, "bad_skus", "give ?skus=a,b")
    levels = await request.app[SERVICES].stock.levels(skus)
    return web.json_response({sku: level.to_json() for sku, level in levels.items()})


api.add("GET", "/api/stock/events", "Stock feed as Server-Sent Events", auth=None,
        query={"skus": SKUS}, errors=(400,), media=SSE, result=EVENTS)(stock_events)
