"""GET /ws/carts/{cartId}: admission (token, cart, access, open for clients) and the read loop of one
y-websocket client; every way it ends is a close code."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from aiohttp import WSCloseCode, WSMsgType, web

from ..access import may_open
from .. import logs
from ..auth import Identity, TokenError
from ..config import Config
from ..sockets import LimitedSocket, close_ws
from .connection import FORBIDDEN, NO_CART, REJECTED, TOO_FAST, TOO_LARGE, UNAUTHORIZED, Close, Connection
from .inbox import Inbox
from .registry import Rooms
from .room import Room

log = logging.getLogger("livecart.rooms")


async def cart_socket(request: web.Request, config: Config, rooms: Rooms,
                      verify: Callable[[str | None], Identity]) -> web.WebSocketResponse:
    """GET /ws/carts/{cartId}: a stock y-websocket provider talks to this (`verify`: the app's tokens)."""
    ws = LimitedSocket(request, config.max_message_bytes, heartbeat=30.0, compress=False)
    await ws.prepare(request)
    try:
        who = verify(request.query.get("token"))
        record = await rooms.store.get_cart(request.match_info["cartId"])
        if record is None:
            raise Close(NO_CART, "no such cart")
        if not await may_open(rooms.store, who, record):
            raise Close(FORBIDDEN, "not allowed to open this cart")
        room = await rooms.get(record.id)
        room.check_open_for_clients()
    except TokenError as exc:
        logs.event("socket.refused", path=request.path, code=UNAUTHORIZED, reason=str(exc),
                   request_id=logs.request_id(request))
        await close_ws(ws, UNAUTHORIZED, str(exc))
        return ws
    except Close as close:
        logs.event("socket.refused", path=request.path, code=close.code, reason=close.reason,
                   request_id=logs.request_id(request))
        await close_ws(ws, close.code, close.reason)
        return ws
    except Exception as exc:  # the store or bus is away: a clear, retryable close, not a hang
        log.warning("cart %s: cannot open (%s)", request.match_info["cartId"], exc)
        await close_ws(ws, WSCloseCode.INTERNAL_ERROR, "storage unavailable; retry shortly")
        return ws
    if request.transport is None:
        return ws  # the client is gone already
    conn = Connection(ws, request.transport, who, config, room.id)
    conn.request_id = logs.request_id(request)
    try:
        room.join(conn)
        await serve_connection(room, conn, config, rooms.in_flight)
    finally:
        try:
            room.leave(conn)
        except Exception:  # never an HTTP 500 written into the upgraded socket
            log.exception("cart %s: error when %s left", room.id, who.sub)
        await conn.finish()
    return ws


async def serve_connection(room: Room, conn: Connection, config: Config,
                           in_flight: asyncio.Semaphore | None = None) -> None:
    """Hands the room what the client sends, in order, while a reader runs ahead; every way it can
    fail ends in a close code.

    The reader fills the connection's `Inbox` (updates waiting there merge), so a sender faster than
    its room is taken a batch at a time; past the inbox's bound the socket is not read until the room
    catches up (TCP slows that sender alone). `in_flight`, the process's budget, bounds how many
    frames are inside rooms at once: past it work waits, merged in inboxes, instead of interleaving
    without bound, which keeps the latency of what is accepted bounded."""
    inbox = Inbox(config.max_inbox_bytes)
    reading = asyncio.ensure_future(read_into(inbox, conn, config))
    reading.add_done_callback(inbox.reader_done)
    try:
        while await inbox.next(reading) and not conn.closing:
            started = time.perf_counter()
            if in_flight is None:
                await room.receive(conn, inbox.take())
            else:
                async with in_flight:
                    await room.receive(conn, inbox.take())  # taken once admitted: what waited meanwhile merged
            room.metrics.relayed(time.perf_counter() - started)
        if not conn.closing:
            reading.result()  # how reading ended: the peer's close, or a Close (4413, 4429, 4400)
    except Close as close:
        rejected = close.code in (REJECTED, TOO_LARGE, TOO_FAST)
        if rejected:
            room.metrics.rejected(close.reason, close.code)
        logs.event("cart.rejected" if rejected else "cart.closed", cartId=room.id, sub=conn.who.sub,
                   role=conn.who.role, code=close.code, rule=close.reason, request_id=conn.request_id)
        await stop(reading)  # no read may be in progress while the close handshake runs
        conn.close_soon(close.code, close.reason)
    except Exception:
        log.exception("cart %s: error serving %s", room.id, conn.who.sub)
        await stop(reading)
        conn.close_soon(WSCloseCode.INTERNAL_ERROR, "server error; reconnect")
    finally:
        await stop(reading)


async def stop(task: asyncio.Future[None]) -> None:
    """Cancels the reader and waits for it; how it ended was already read, or no longer matters."""
    if not task.done():
        task.cancel()
        await asyncio.wait((task,))
    if not task.cancelled():
        task.exception()  # retrieved: a close already under way makes its Close moot


async def read_into(inbox: Inbox, conn: Connection, config: Config) -> None:
    """Reads the socket into `inbox` until it closes, checking each frame at the door."""
    async for msg in conn.ws:
        if conn.closing:
            return
        if msg.type is WSMsgType.ERROR:
            return  # the socket closed itself (LimitedSocket: 4413 or 4400)
        if msg.type is not WSMsgType.BINARY:
            raise Close(REJECTED, "binary y-protocols frames only")
        if len(msg.data) > config.max_message_bytes:
            raise Close(TOO_LARGE, f"message over {config.max_message_bytes} bytes")
        if not conn.allow():
            raise Close(TOO_FAST, f"over {config.max_messages_per_second} messages per second")
        inbox.put(msg.data)
        if inbox.full:
            await inbox.room_for_more()  # the fastest senders: read no more until the room took their backlog
