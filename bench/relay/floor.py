"""The Python floor for bench/relay: the y-websocket server's relay on aiohttp + pycrdt, then
with livecart's own store and validator added one at a time.

It answers one question the side-by-side cannot: how much of livecart's cost over the
reference is the stack (CPython, aiohttp, pycrdt) and how much is livecart's own work per
edit. Like the reference it has no auth and no cart registry (a room is any path under
/ws/carts/) and relays every update to every socket of the room, the sender too. It
relays every awareness message as it comes, without the reference's check for a newer
clock: a few more frames than the reference sends (~5% under load 1), so the floor is if
anything a little high. Steps, each adding to the one before:

    relay     apply each update to the room's pycrdt doc, relay it
    store     ... commit it to livecart's SqliteStore first (as livecart: relayed = on disk)
    validate  ... through livecart's validator (CartDoc.apply_client_update) instead of a
              plain apply; the catalog knows every SKU

livecart itself (`--stock 0`) adds auth, rate limits, the shop feed and the stock answer's
bookkeeping; with stock, the answer written into `server` with every edit.

    python bench/relay/floor.py --port 8080 --step store --data-dir /tmp/floor
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import tempfile
from pathlib import Path
from typing import AsyncIterator

from aiohttp import WSMsgType, web
from pycrdt import Doc

from livecart.crdt import CartDoc, Product, Rejected
from livecart.crdt.protocol import Kind, awareness_message, parse, sync_step1, sync_step2, update_message
from livecart.crdt.schema import Limits
from livecart.server.sync.connection import binary_frame
from livecart.server.store.sqlite import SqliteStore

STEPS = ("relay", "store", "validate")
STEP = web.AppKey("step", str)
ROOMS = web.AppKey("rooms", dict)
STORE = web.AppKey("store", object)  # SqliteStore | None


class FloorRoom:
    """A room as the reference keeps it: a doc and its sockets."""

    def __init__(self, validate: bool) -> None:
        self.cart = CartDoc() if validate else None
        self.doc = Doc() if self.cart is None else None
        self.transports: set[asyncio.Transport] = set()

    def state(self) -> bytes:
        return self.cart.state() if self.cart is not None else self.doc.get_state()

    def diff(self, state: bytes) -> bytes:
        return self.cart.diff(state) if self.cart is not None else self.doc.get_update(state)

    def apply(self, update: bytes) -> bytes:
        """The update to store and relay (the validator keeps only what is new)."""
        if self.cart is None:
            self.doc.apply_update(update)
            return update
        verdict = self.cart.apply_client_update(update, catalog, LIMITS)
        if isinstance(verdict, Rejected):
            raise ValueError(verdict.reason)
        return verdict.update

    def broadcast(self, message: bytes) -> None:
        frame = binary_frame(message)
        for transport in self.transports:
            transport.write(frame)


LIMITS = Limits()


@functools.cache
def catalog(sku: str) -> Product:
    return Product(sku, sku, 900)


async def room_socket(request: web.Request) -> web.WebSocketResponse:
    rooms: dict[str, FloorRoom] = request.app[ROOMS]
    room_id = request.match_info["room"]
    room = rooms.get(room_id)
    if room is None:
        room = rooms[room_id] = FloorRoom(validate=request.app[STEP] == "validate")
    store = request.app[STORE]
    ws = web.WebSocketResponse(heartbeat=30.0, compress=False)
    await ws.prepare(request)
    transport = request.transport
    assert transport is not None
    room.transports.add(transport)
    transport.write(binary_frame(sync_step1(room.state())))
    try:
        async for msg in ws:
            if msg.type is not WSMsgType.BINARY:
                break
            m = parse(msg.data)
            if m.kind is Kind.SYNC_STEP1:
                transport.write(binary_frame(sync_step2(room.diff(m.payload))))
            elif m.kind in (Kind.SYNC_STEP2, Kind.UPDATE):
                update = room.apply(m.payload)
                if isinstance(store, SqliteStore):
                    await store.append(room_id, update)
                room.broadcast(update_message(update))
            elif m.kind is Kind.AWARENESS:
                room.broadcast(awareness_message(m.payload))
    finally:
        room.transports.discard(transport)
    return ws


async def health(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app(step: str, data_dir: Path) -> web.Application:
    app = web.Application()
    app[STEP], app[ROOMS], app[STORE] = step, {}, None
    app.router.add_get("/", health)
    app.router.add_get("/ws/carts/{room}", room_socket)

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        store = SqliteStore(data_dir / "floor.sqlite3") if step != "relay" else None
        if store is not None:
            await store.open()
            app[STORE] = store
        yield
        if store is not None:
            await store.close()

    app.cleanup_ctx.append(store_ctx)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--step", choices=STEPS, default="relay")
    parser.add_argument("--data-dir", type=Path, default=None, help="for the store (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="floor-") as tmp:
        web.run_app(create_app(args.step, args.data_dir or Path(tmp)), host=args.host, port=args.port,
                    print=None)


if __name__ == "__main__":
    main()
