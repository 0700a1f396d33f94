"""Issue 16, defect 2: a server's memory returns to where it was after rooms load and unload,
rejected updates rebuild a cart, and unloaded carts are read (a real `livecart serve` child, its RSS)."""
from __future__ import annotations

import asyncio
import gc
import random
import weakref
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import aiohttp
import pytest
from pycrdt import Awareness, Doc, Map

from harness import SECRET, Livecart
from livecart.crdt.cart import new_line
from livecart.crdt.protocol import awareness_message, update_message
from livecart.server import auth
from livecart.server.services import SERVICES
from livecart.server.sync.room import Room
from processes import ServerProcess
from yclient import eventually

ADMIN = auth.mint(SECRET, "root", "admin")
ALICE = auth.mint(SECRET, "alice", "customer")
REJECTED = 4400
MB = 1 << 20
GROWTH_BOUND = 20 * MB  # generous: the figure itself is bench/memory.py's (a leak grew this 100 MB+)
CARTS = 40
LINES = 5
WORKERS = 8


def rss(pid: int) -> int:
    """The process's resident set, in bytes."""
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def rejected_update() -> bytes:
    """A line whose qty breaks the catalog's maxQty: applied, judged, rejected, the cart rebuilt."""
    doc = Doc()
    lines = doc.get("lines", type=Map)
    lines["l-over"] = new_line("MUG", 999, "alice", "web", 1)
    return doc.get_update()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data", "--room-grace", "0").start()  # the last --room-grace wins
    yield proc
    proc.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        yield s


async def call(http: aiohttp.ClientSession, method: str, url: str, token: str = ADMIN, **kw: object) -> tuple[int, dict]:
    async with http.request(method, url, headers={"Authorization": f"Bearer {token}"}, **kw) as r:
        return r.status, await r.json()


async def carts_with_lines(http: aiohttp.ClientSession, server: ServerProcess) -> list[str]:
    status, body = await call(http, "PUT", f"{server.base}/api/catalog/MUG", json={"name": "Mug", "price": 900, "maxQty": 5})
    assert status == 200, body
    ids = []
    for _ in range(CARTS):
        status, body = await call(http, "POST", f"{server.base}/api/carts", ALICE, json={})
        assert status == 201, body
        ids.append(body["cartId"])
        for _ in range(LINES):
            status, body = await call(http, "POST", f"{server.base}/api/carts/{ids[-1]}/lines", ALICE,
                                      json={"sku": "MUG", "qty": 1})
            assert status == 201, body
    return ids


async def loaded_rooms(http: aiohttp.ClientSession, server: ServerProcess) -> int:
    async with http.get(f"{server.base}/healthz") as r:
        return int((await r.json())["rooms"])


async def settled_rss(http: aiohttp.ClientSession, server: ServerProcess) -> int:
    """RSS once every room has unloaded (rooms unload in the background after their last socket)."""
    rooms = [-1]

    async def poll() -> bool:
        rooms[0] = await loaded_rooms(http, server)
        return rooms[0] == 0
    deadline = asyncio.get_running_loop().time() + 30
    while not await poll():
        assert asyncio.get_running_loop().time() < deadline, f"{rooms[0]} rooms still loaded"
        await asyncio.sleep(0.05)
    assert server.proc is not None
    return rss(server.proc.pid)


async def reject_cycle(http: aiohttp.ClientSession, server: ServerProcess, cart_id: str, frames: list[bytes]) -> None:
    """One room load and unload: connect (the room loads), send the frames, the last of which the
    server rejects (the cart rebuilds), and see the 4400 close; the room unloads after it."""
    async with http.ws_connect(server.ws(f"/ws/carts/{cart_id}?token={ALICE}")) as ws:
        await ws.receive_bytes(timeout=30)  # the server's sync step 1: the room is loaded
        try:
            for frame in frames:
                await ws.send_bytes(frame)
        except ConnectionError:
            pass  # closed (4400) by an earlier frame of the list
        while (msg := await ws.receive(timeout=30)).type is aiohttp.WSMsgType.BINARY:
            pass
    assert ws.close_code == REJECTED, (msg, ws.close_code)


async def run_cycles(count: int, cycle: Callable[[str], Awaitable[None]], carts: list[str]) -> None:
    """`count` cycles over the carts, `WORKERS` at a time, never two on one cart at once."""
    async def worker(mine: list[str]) -> None:
        for i in range(count // WORKERS):
            await cycle(mine[i % len(mine)])
    await asyncio.gather(*(worker(carts[w::WORKERS]) for w in range(WORKERS)))


@pytest.mark.timeout(900)  # 10,000 sockets: ~40 s of CPU, far more wall time beside a busy suite
async def test_room_cycles_and_rejected_updates_leave_memory_where_it_was(
        server: ServerProcess, http: aiohttp.ClientSession) -> None:
    """10,000 room loads and unloads, each with a rejected update, and 2,000 GETs of unloaded carts."""
    carts = await carts_with_lines(http, server)
    frames = [update_message(rejected_update())]

    async def cycle(cart_id: str) -> None:
        await reject_cycle(http, server, cart_id, frames)

    async def read(cart_id: str) -> None:
        status, body = await call(http, "GET", f"{server.base}/api/carts/{cart_id}", ALICE)
        assert status == 200 and len(body["lines"]) == LINES, body

    await run_cycles(1_000, cycle, carts)  # warm-up: allocator arenas, caches, SQLite pages
    await run_cycles(400, read, carts)
    before = await settled_rss(http, server)
    await run_cycles(10_000, cycle, carts)
    await run_cycles(2_000, read, carts)
    after = await settled_rss(http, server)
    assert after - before < GROWTH_BOUND, f"RSS grew {(after - before) / MB:.1f} MB"


async def test_fuzzed_rooms_give_their_memory_back_after_unloading(
        server: ServerProcess, http: aiohttp.ClientSession) -> None:
    """Garbage frames, rejected updates and awareness, then every room unloads: RSS returns to its baseline."""
    carts = await carts_with_lines(http, server)
    rng = random.Random(16)
    bad = rejected_update()

    def frames() -> list[bytes]:
        aw = Awareness(Doc())
        aw.set_local_state({"user": {"name": "x" * rng.randint(1, 2000)}, "focus": True})
        mutated = bytearray(bad)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(2, len(mutated))] = rng.randrange(256)
        junk = [awareness_message(aw.encode_awareness_update([aw.client_id])),
                update_message(bytes(mutated)), update_message(rng.randbytes(rng.randint(1, 64)))]
        rng.shuffle(junk)
        return junk + [update_message(bad)]  # always ends in a rejection (4400)

    async def cycle(cart_id: str) -> None:
        await reject_cycle(http, server, cart_id, frames())

    await run_cycles(1_000, cycle, carts)  # warm-up: large awareness states raise the allocator's high-water mark
    before = await settled_rss(http, server)
    await run_cycles(2_000, cycle, carts)
    after = await settled_rss(http, server)
    assert after - before < GROWTH_BOUND, f"RSS grew {(after - before) / MB:.1f} MB"


async def dropped(lc: Livecart, cart_id: str, drop: Callable[[Room], None]) -> list[weakref.ref[Any]]:
    """Weak references to a loaded room, its cart and its doc, after `drop` and the room's last socket left."""
    client = await lc.client(cart_id)
    client.lines["l-1"] = new_line("MUG", 1, "alice", "web", 1)
    room = lc.app[SERVICES].rooms.rooms[cart_id]
    await eventually(lambda: "l-1" in room.cart.lines, what="the edit")
    refs = [weakref.ref(room), weakref.ref(room.cart), weakref.ref(room.cart.doc)]
    drop(room)
    del room
    await client.close()
    lc.clients.remove(client)
    await eventually(lambda: cart_id not in lc.app[SERVICES].rooms.rooms, what="the unload")
    return refs


@pytest.mark.parametrize("how", ["unload", "fail"])
async def test_a_dropped_room_frees_its_cart_and_doc(lc: Livecart, how: str) -> None:
    """After the last socket leaves (`unload_soon`), or the room failed (`fail`), nothing keeps it."""
    cart_id = await lc.cart("alice")
    rooms = lc.app[SERVICES].rooms
    refs = await dropped(lc, cart_id, rooms.fail if how == "fail" else lambda room: None)

    def freed() -> bool:
        gc.collect()
        return all(ref() is None for ref in refs)
    await eventually(freed, timeout=30, what="the room, its cart and its doc to be freed")
    again = await lc.client(cart_id)  # reloaded from the store, with the edit
    assert "l-1" in again.lines
