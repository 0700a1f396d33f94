"""What a `livecart serve` process keeps of the carts it loaded and dropped: RSS per operation.

A real server child (SQLite, `--room-grace 0`), carts of `--lines` lines, and three workloads,
each warmed up first, then run in rounds of `--cycles` operations, with the server's RSS read
(all rooms unloaded) before and after each round:

  load/unload   a websocket connects (the room loads), syncs and leaves (the room unloads)
  rejected      a second socket sends an update the schema refuses (the cart is rebuilt and the
                socket closed with 4400) while a first keeps the room loaded
  GET unloaded  GET /api/carts/{id} of a cart no room holds (the cart is read into a CartDoc)

Growth that stays near 0 KiB per operation round after round is no leak (issue 16 measured
~13 KiB per empty cart, 67 KiB at 20 lines, 228 KiB at 80, never returned).

    .venv/bin/python bench/memory.py [--lines 20] [--cycles 1000] [--rounds 3]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Awaitable, Callable

import aiohttp
from pycrdt import Doc, Map

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import livecart_server, token  # noqa: E402
from livecart.crdt.cart import new_line  # noqa: E402
from livecart.crdt.protocol import update_message  # noqa: E402

CARTS = 16  # also the operations in flight at once
CUSTOMER = token("shopper")


def rss_mib(pid: int) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def refused_update() -> bytes:
    doc = Doc()
    doc.get("lines", type=Map)["l-refused"] = new_line("MUG", 10_000, "shopper", "web", 1)  # over maxQty
    return update_message(doc.get_update())


class Bench:
    def __init__(self, http: aiohttp.ClientSession, base: str, pid: int) -> None:
        self.http, self.base, self.pid = http, base, pid
        self.ws_base = base.replace("http", "ws", 1)
        self.carts: list[str] = []

    async def call(self, method: str, path: str, tok: str, **kw: object) -> dict:
        async with self.http.request(method, self.base + path, headers={"Authorization": f"Bearer {tok}"}, **kw) as r:
            assert r.status < 300, (r.status, await r.text())
            return await r.json()  # type: ignore[no-any-return]

    async def setup(self, lines: int) -> None:
        await self.call("PUT", "/api/catalog/MUG", token("root", "admin"), json={"name": "Mug", "price": 900})
        for _ in range(CARTS):
            cart_id = (await self.call("POST", "/api/carts", CUSTOMER, json={}))["cartId"]
            for _ in range(lines):
                await self.call("POST", f"/api/carts/{cart_id}/lines", CUSTOMER, json={"sku": "MUG", "qty": 1})
            self.carts.append(cart_id)
            await self.load_unload(cart_id)  # a room loaded by HTTP unloads when a socket leaves it

    def socket(self, cart_id: str) -> aiohttp.client._WSRequestContextManager:
        return self.http.ws_connect(f"{self.ws_base}/ws/carts/{cart_id}?token={CUSTOMER}")

    async def load_unload(self, cart_id: str) -> None:
        async with self.socket(cart_id) as ws:
            await ws.receive_bytes(timeout=30)  # the server's sync step 1: the room is loaded

    async def rejected(self, cart_id: str, frame: bytes = refused_update()) -> None:
        async with self.socket(cart_id) as ws:
            await ws.receive_bytes(timeout=30)
            await ws.send_bytes(frame)
            while (await ws.receive(timeout=30)).type is aiohttp.WSMsgType.BINARY:
                pass
        assert ws.close_code == 4400, ws.close_code

    async def get_unloaded(self, cart_id: str) -> None:
        await self.call("GET", f"/api/carts/{cart_id}", CUSTOMER)

    async def settled(self) -> float:
        """RSS (MiB) once no room is loaded."""
        for _ in range(600):
            async with self.http.get(self.base + "/healthz") as r:
                if (await r.json())["rooms"] == 0:
                    return rss_mib(self.pid)
            await asyncio.sleep(0.05)
        raise RuntimeError("rooms stay loaded")

    async def run(self, count: int, op: Callable[[str], Awaitable[None]]) -> float:
        """Seconds for `count` operations, one at a time per cart."""
        started = time.perf_counter()

        async def worker(cart_id: str) -> None:
            for _ in range(count // CARTS):
                await op(cart_id)
        await asyncio.gather(*(worker(c) for c in self.carts))
        return time.perf_counter() - started

    async def kept_loaded(self, count: int) -> float:
        """`rejected` while a first socket per cart keeps its room loaded (no unloads: rebuilds only)."""
        async with asyncio.timeout(600):
            holders = [await self.socket(c).__aenter__() for c in self.carts]
            try:
                for ws in holders:
                    await ws.receive_bytes(timeout=30)
                return await self.run(count, self.rejected)
            finally:
                for ws in holders:
                    await ws.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=20, help="lines per cart")
    ap.add_argument("--cycles", type=int, default=1000, help="operations per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with livecart_server("--room-grace", "0") as (base, pid):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            bench = Bench(http, base, pid)
            await bench.setup(args.lines)
            workloads: dict[str, Callable[[int], Awaitable[float]]] = {
                "load/unload": lambda n: bench.run(n, bench.load_unload),
                "rejected": bench.kept_loaded,
                "GET unloaded": lambda n: bench.run(n, bench.get_unloaded),
            }
            print(f"{CARTS} carts of {args.lines} lines; RSS in MiB with every room unloaded")
            print(f"{'workload':14} {'round':>5} {'ops':>6} {'RSS before':>10} {'RSS after':>10} "
                  f"{'KiB/op':>8} {'ops/s':>7}")
            for name, workload in workloads.items():
                await workload(args.cycles)  # warm-up: allocator arenas, SQLite cache, sockets
                for r in range(1, args.rounds + 1):
                    before = await bench.settled()
                    seconds = await workload(args.cycles)
                    after = await bench.settled()
                    done = args.cycles // CARTS * CARTS
                    print(f"{name:14} {r:>5} {done:>6} {before:>10.1f} {after:>10.1f} "
                          f"{(after - before) * 1024 / done:>8.2f} {done / seconds:>7.0f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
