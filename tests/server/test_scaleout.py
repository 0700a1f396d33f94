"""Several `livecart serve` processes on one Redis: shared carts, one stock authority, crashes and Redis restarts."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import orjson
import pytest

from harness import SECRET
from livecart.crdt.cart import new_line
from livecart.server import auth
from processes import ServerProcess
from redis_server import RedisServer
from yclient import YClient, eventually

ADMIN = auth.mint(SECRET, "root", "admin")


def token(sub: str) -> str:
    return auth.mint(SECRET, sub, "customer")


@pytest.fixture
def redis(tmp_path: Path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


@pytest.fixture
def cluster(tmp_path: Path, redis: RedisServer):
    procs = [ServerProcess(tmp_path / f"data{i}", "--store", redis.url, "--bus", redis.url).start()
             for i in range(3)]
    yield procs
    for p in procs:
        p.stop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        yield s


async def call(s: aiohttp.ClientSession, method: str, url: str, tok: str = ADMIN, **kw):
    async with s.request(method, url, headers={"Authorization": f"Bearer {tok}"}, **kw) as r:
        return r.status, await r.json()


async def setup_shop(s: aiohttp.ClientSession, base: str, on_hand: int = 100) -> None:
    assert (await call(s, "PUT", f"{base}/api/catalog/MUG", json={"name": "Mug", "price": 900}))[0] == 200
    assert (await call(s, "PUT", f"{base}/api/stock/MUG", json={"onHand": on_hand}))[0] == 200


async def new_cart(s: aiohttp.ClientSession, base: str, owner: str) -> str:
    status, body = await call(s, "POST", f"{base}/api/carts", token(owner), json={"channel": "web"})
    assert status == 201, body
    return body["cartId"]


async def client(s, proc: ServerProcess, cart: str, owner: str = "alice") -> YClient:
    c = await YClient(s, proc.ws(f"/ws/carts/{cart}?token={token(owner)}")).connect()
    await c.wait_synced()
    return c


def add(c: YClient, line: str, qty: int = 1, who: str = "alice") -> None:
    c.lines[line] = new_line("MUG", qty, who, "web", int(time.time() * 1000))


async def test_clients_on_different_processes_converge_and_a_late_joiner_gets_all(cluster, http) -> None:
    a, b, c = cluster
    await setup_shop(http, a.base)
    cart = await new_cart(http, a.base, "alice")
    on_a, on_b = await client(http, a, cart), await client(http, b, cart)
    for i in range(5):
        add(on_a, f"a{i}")
        add(on_b, f"b{i}")
    await eventually(lambda: len(on_a.lines) == 10 and on_a.snapshot()["lines"] == on_b.snapshot()["lines"],
                     what="convergence across processes")
    late = await client(http, c, cart)
    await eventually(lambda: late.snapshot()["lines"] == on_a.snapshot()["lines"], what="late joiner")
    await eventually(lambda: len(late.snapshot()["server"]["holds"]) == 10, what="holds everywhere")
    await on_a.set_presence({"user": {"name": "Alice"}})
    await eventually(lambda: on_a.awareness.client_id in late.awareness.states, what="presence across processes")
    for x in (on_a, on_b, late):
        await x.close()


async def test_last_item_race_across_three_processes(cluster, http) -> None:
    await setup_shop(http, cluster[0].base, on_hand=5)
    feeds: list[list[dict]] = []

    async def watch(proc: ServerProcess) -> None:
        seen: list[dict] = []
        feeds.append(seen)
        async with http.ws_connect(proc.ws("/ws/stock?skus=MUG")) as ws:
            async for msg in ws:
                seen.append(orjson.loads(msg.data))
    watchers = [asyncio.ensure_future(watch(p)) for p in cluster for _ in range(2)]
    shoppers = [f"s{i}" for i in range(60)]
    carts = [await new_cart(http, cluster[i % 3].base, s) for i, s in enumerate(shoppers)]
    clients = [await client(http, cluster[i % 3], c, s) for i, (c, s) in enumerate(zip(carts, shoppers))]
    for c, s in zip(clients, shoppers):
        add(c, "l1", who=s)

    def holds() -> list[dict | None]:
        return [c.snapshot()["server"]["holds"].get("l1") for c in clients]
    await eventually(lambda: all(holds()), timeout=20, what="all 60 decided")
    assert sum(h["qty"] for h in holds()) == 5
    assert [h["status"] for h in holds()].count("unavailable") == 55

    def last_available(seen: list[dict]) -> int | None:
        values = [m["available"] for m in seen if "available" in m]
        return values[-1] if values else None
    await eventually(lambda: len(feeds) == 6 and all(last_available(f) == 0 for f in feeds),
                     what="every subscriber on every process sees 0")
    status, levels = await call(http, "GET", f"{cluster[2].base}/api/stock?skus=MUG")
    assert levels["MUG"] == {"onHand": 5, "held": 5, "available": 0}
    for w in watchers:
        w.cancel()
    for c in clients:
        await c.close()


async def test_a_killed_process_loses_nothing_its_peers_had_received(cluster, http) -> None:
    a, b, _ = cluster
    await setup_shop(http, a.base)
    cart = await new_cart(http, a.base, "alice")
    writer, observer = await client(http, a, cart), await client(http, b, cart)
    for i in range(20):
        add(writer, f"w{i}")
        await asyncio.sleep(0.005)
    await eventually(lambda: len(observer.lines) >= 10, what="some edits relayed")
    a.kill()  # mid-edit
    await writer.wait_closed()
    received = observer.snapshot()["lines"]
    await observer.close()
    again = await client(http, b, cart)  # the writer's app reconnects to another process
    await eventually(lambda: all(k in again.lines for k in received), what="nothing received is lost")
    add(again, "after-crash")
    await again.close()


async def test_redis_restart_servers_reconnect_and_clients_get_a_clear_close(cluster, redis, http) -> None:
    a, b, _ = cluster
    await setup_shop(http, a.base)
    cart = await new_cart(http, a.base, "alice")
    on_a, on_b = await client(http, a, cart), await client(http, b, cart)
    add(on_a, "before")
    await eventually(lambda: "before" in on_b.lines, what="relay before the outage")
    redis.kill()
    add(on_a, "during")  # cannot be stored: the writer is closed with 1011, not left hanging
    code, _ = await on_a.wait_closed(timeout=10)
    assert code == 1011
    fresh = await YClient(http, a.ws(f"/ws/carts/{cart}?token={token('alice')}")).connect()
    code, reason = await fresh.wait_closed(timeout=10)  # while Redis is down: a clear close, not a hang
    assert code == 1011 and "storage" in reason
    redis.start()  # same port, AOF: everything acknowledged is back
    async def reconnected() -> YClient:
        for _ in range(50):
            c = await YClient(http, a.ws(f"/ws/carts/{cart}?token={token('alice')}")).connect()
            try:
                await c.wait_synced(timeout=2)
                return c
            except asyncio.TimeoutError:
                await c.close()
                await asyncio.sleep(0.2)
        raise AssertionError("servers did not come back after Redis restarted")
    back_a = await reconnected()
    assert "before" in back_a.lines
    add(back_a, "after")
    await eventually(lambda: "after" in on_b.lines or on_b.closed.is_set(), timeout=10, what="relay after")
    back_b = await YClient(http, b.ws(f"/ws/carts/{cart}?token={token('alice')}")).connect()
    await back_b.wait_synced(timeout=5)
    await eventually(lambda: {"before", "after"} <= set(back_b.lines), what="both processes agree")
    for c in (back_a, back_b, on_b):
        await c.close()
