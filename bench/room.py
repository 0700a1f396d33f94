"""What one edit costs inside the server, without sockets: the room path of load 1 in-process.

Carts × 3 clients (pycrdt docs) each own a line and set its `qty` and `addedAt` in one
transaction, as `bench/relay` does. Every edit goes through `Room.receive` (server/sync/room.py) of a real app
(SQLite store in a temp dir, stock actor, 1,000,000 units per SKU so every line is held):
validate → stock decision and answer → SQLite commit → frames to the other two clients
(written to a stub transport). Prints the event-loop thread's CPU per edit.

On these machines wall-clock figures drift by up to 2× within the hour; instruction counts
do not. For a figure that is the same from run to run, run it twice under callgrind and
divide the difference by the difference in edits (setup cancels out):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python bench/room.py --edits 600
    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python bench/room.py --edits 1800
    # "Collected : N" of each: (N1800 - N600) / 1200 = instructions per edit

    .venv/bin/python bench/room.py [--carts 200] [--edits 6000] [--profile]
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pycrdt import Doc, Map

from livecart.crdt.cart import new_line
from livecart.crdt.protocol import update_message
from livecart.server import auth
from livecart.server.app import create_app
from livecart.server.config import Config
from livecart.server.services import SERVICES
from livecart.server.sync.connection import Connection
from livecart.server.sync.room import Room

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import SECRET, token  # noqa: E402
SKUS = [f"SKU-{i}" for i in range(5)]


class StubTransport:
    """Takes the relayed frames (the kernel's part of a send is not measured here)."""

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


class Editor:
    """One client: a doc, its line, and the updates its edits produce."""

    def __init__(self, line_id: str) -> None:
        self.doc: Doc = Doc()
        self.line_id = line_id
        self.updates: list[bytes] = []
        self.lines = self.doc.get("lines", type=Map)
        self._sub = self.doc.observe(lambda event: self.updates.append(event.update))

    def edit(self, qty: int, added_at: int) -> bytes:
        with self.doc.transaction():
            self.lines[self.line_id]["qty"] = qty
            self.lines[self.line_id]["addedAt"] = added_at
        return update_message(self.updates.pop())


async def open_carts(client: TestClient, app: web.Application, config: Config,
                     carts: int) -> list[tuple[Room, list[tuple[Connection, Editor]]]]:
    admin = {"Authorization": f"Bearer {token('admin', 'admin')}"}
    for i, sku in enumerate(SKUS):
        assert (await client.put(f"/api/catalog/{sku}", json={"name": sku, "price": 900 + i}, headers=admin)).ok
        assert (await client.put(f"/api/stock/{sku}", json={"onHand": 1_000_000}, headers=admin)).ok
    opened = []
    for c in range(carts):
        customer = token(f"customer-{c}")
        response = await client.post("/api/carts", json={}, headers={"Authorization": f"Bearer {customer}"})
        cart_id = (await response.json())["cartId"]
        room = await app[SERVICES].rooms.get(cart_id)
        members = []
        for k in range(3):
            conn = Connection(web.WebSocketResponse(), StubTransport(), auth.verify(SECRET, customer),  # type: ignore[arg-type]
                              config, cart_id)
            room.conns.add(conn)
            editor = Editor(f"line-{c}-{k}")
            editor.lines[editor.line_id] = new_line(SKUS[(c + k) % len(SKUS)], 1, f"customer-{c}", "web", 1)
            await room.receive(conn, update_message(editor.updates.pop()))
            members.append((conn, editor))
        opened.append((room, members))
    return opened


async def run(carts: int, edits: int, profile: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="livecart-bench-room-") as data:
        config = Config(jwt_secret=SECRET, data_dir=Path(data), max_messages_per_second=1_000_000)
        app = create_app(config)
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            opened = await open_carts(client, app, config, carts)
            work: list[tuple[Room, Connection, bytes]] = []
            for i in range(edits):  # round robin over carts, then over a cart's clients
                room, members = opened[i % carts]
                conn, editor = members[(i // carts) % len(members)]
                work.append((room, conn, editor.edit(i % 99 + 1, 1_000 + i)))
            warm, measured = work[:len(work) // 3], work[len(work) // 3:]
            for room, conn, message in warm:
                await room.receive(conn, message)
            profiler = cProfile.Profile() if profile else None
            if profiler:
                profiler.enable()
            started = time.thread_time()
            for room, conn, message in measured:
                await room.receive(conn, message)
            spent = time.thread_time() - started
            if profiler:
                profiler.disable()
            print(f"{len(measured):,} edits over {carts} carts × 3 clients: "
                  f"{spent / len(measured) * 1e6:.0f} µs of event-loop CPU per edit"
                  + (" (under cProfile)" if profiler else ""))
            if profiler:
                pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        finally:
            await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--carts", type=int, default=200)
    parser.add_argument("--edits", type=int, default=6000, help="the first third warms up, unmeasured")
    parser.add_argument("--profile", action="store_true", help="cProfile the measured edits (slows them)")
    args: Any = parser.parse_args()
    asyncio.run(run(args.carts, args.edits, args.profile))


if __name__ == "__main__":
    main()
