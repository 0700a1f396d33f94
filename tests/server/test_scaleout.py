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
from processes import Loopback, ServerProcess
from redis_server import RedisServer
from yclient import WAIT, YClient, eventually

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


async def client(s, proc: Loopback, cart: str, owner: str = "alice") -> YClient:
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
    await eventually(lambda: all(holds()), what="all 60 decided")
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
    code, _ = await on_a.wait_closed()
    assert code == 1011
    fresh = await YClient(http, a.ws(f"/ws/carts/{cart}?token={token('alice')}")).connect()
    code, reason = await fresh.wait_closed()  # while Redis is down: a clear close, not a hang
    assert code == 1011 and "storage" in reason
    redis.start()  # same port, AOF: everything acknowledged is back
    async def reconnected() -> YClient:
        for _ in range(50):
            c = await YClient(http, a.ws(f"/ws/carts/{cart}?token={token('alice')}")).connect()
            try:
                await c.wait_synced(timeout=5)
                return c
            except asyncio.TimeoutError:
                await c.close()
                await asyncio.sleep(0.2)
        raise AssertionError("servers did not come back after Redis restarted")
    back_a = await reconnected()
    assert "before" in back_a.lines
    add(back_a, "after")
    await eventually(lambda: "after" in on_b.lines or on_b.closed.is_set(), what="relay after")
    back_b = await YClient(http, b.ws(f"/ws/carts/{cart}?token={token('alice')}")).connect()
    await back_b.wait_synced()
    await eventually(lambda: {"before", "after"} <= set(back_b.lines), what="both processes agree")
    for c in (back_a, back_b, on_b):
        await c.close()


async def test_identity_and_checkout_work_across_processes(cluster, http) -> None:
    """Sign-out, merges, feeds, checkout and payment each done through a different process."""
    a, b, c = cluster
    await setup_shop(http, a.base, on_hand=3)
    shop: list[dict] = []
    listening = asyncio.Event()

    async def admin_feed() -> None:
        async with http.ws_connect(c.ws(f"/ws/admin?token={ADMIN}")) as ws:
            listening.set()
            async for msg in ws:
                shop.append(orjson.loads(msg.data))
    feed = asyncio.ensure_future(admin_feed())
    await asyncio.wait_for(listening.wait(), WAIT)  # connected before the edits it must hear of
    # a kiosk on process A loses its socket when it is signed out through process B
    cart = await new_cart(http, a.base, "kim")
    status, code = await call(http, "POST", f"{a.base}/api/kiosk-codes", token("kim"))
    kiosk = auth.mint(SECRET, "k1", "kiosk")
    status, session = await call(http, "POST", f"{b.base}/api/kiosks/k1/sessions", kiosk, json=code)
    assert status == 201 and session["cartId"] == cart
    screen = await YClient(http, a.ws(f"/ws/carts/{cart}?token={kiosk}")).connect()
    await screen.wait_synced()
    add(screen, "k1", who="k1")
    await eventually(lambda: any(e["type"] == "cart.line_added" and e["cartId"] == cart for e in shop),
                     what="process C's admin feed hears process A's edit")
    assert (await call(http, "DELETE", f"{b.base}/api/kiosks/k1/sessions", kiosk))[0] == 200
    code_, reason = await screen.wait_closed()
    assert code_ == 4403 and "signed out" in reason
    # a walk-in cart made on B merges (through C) into the customer's cart open on A
    amy = auth.mint(SECRET, "amy", "assistant")
    status, walk_in = await call(http, "POST", f"{b.base}/api/carts", amy, json={"channel": "store"})
    assert (await call(http, "POST", f"{b.base}/api/carts/{walk_in['cartId']}/lines", amy,
                       json={"sku": "MUG", "qty": 2}))[0] == 201
    phone = await client(http, a, cart, "kim")
    status, invite = await call(http, "POST", f"{b.base}/api/carts/{walk_in['cartId']}/invites", amy)
    assert (await call(http, "POST", f"{c.base}/api/invites/{invite['code']}/accept", token("kim")))[1] == {"cartId": cart}
    # same SKU, no personalisation: one line with the larger quantity, held in full
    await eventually(lambda: [(h.get("status"), h.get("qty")) for h in phone.snapshot()["server"]["holds"].values()]
                     == [("held", 2)] and len(phone.lines) == 1, what="merged line held, live on A")
    # checkout through B, payment through C: stock committed once
    status, order = await call(http, "POST", f"{b.base}/api/carts/{cart}/checkout", token("kim"))
    assert status == 201, order
    status, paid = await call(http, "POST", f"{c.base}/api/orders/{order['orderId']}/payment", json={"status": "paid"})
    assert status == 200 and paid["state"] == "confirmed"
    status, levels = await call(http, "GET", f"{a.base}/api/stock?skus=MUG")
    assert levels["MUG"] == {"onHand": 1, "held": 0, "available": 1}
    await eventually(lambda: phone.snapshot()["server"]["status"] == "ordered", what="A's client sees the order")
    await eventually(lambda: any(e["type"] == "order.status" for e in shop), what="order event on C")
    feed.cancel()
    await phone.close()


async def test_a_process_hears_the_busy_feeds_only_while_it_has_readers(cluster, redis, http) -> None:
    """Shop and stock events (one per edit) reach only the processes with readers of them:
    N processes do not each do work for every edit."""
    import redis.asyncio as aioredis

    a, b, c = cluster
    await setup_shop(http, a.base)
    r = aioredis.Redis.from_url(redis.url)

    async def listeners() -> dict[str, int]:
        counts = await r.pubsub_numsub("livecart:events:events", "livecart:events:stock")
        return {k.decode().removeprefix("livecart:"): v for k, v in counts}
    try:
        assert await listeners() == {"events:events": 0, "events:stock": 0}
        shop: list[dict] = []
        async with http.ws_connect(c.ws(f"/ws/admin?token={ADMIN}")) as admin, \
                http.ws_connect(b.ws("/ws/stock?skus=MUG")) as stock:
            async for msg in stock:  # the level before any edit comes once B follows the feed
                if orjson.loads(msg.data).get("available") == 100:
                    break
            assert await listeners() == {"events:events": 1, "events:stock": 1}
            cart = await new_cart(http, a.base, "alice")
            on_a = await client(http, a, cart)
            add(on_a, "l1", qty=2)
            async for msg in admin:  # process C's shop floor hears process A's edit
                shop.append(orjson.loads(msg.data))
                if any(e["type"] == "cart.line_added" and e["cartId"] == cart for e in shop):
                    break
            async for msg in stock:  # process B's viewer hears the hold made on A
                if orjson.loads(msg.data).get("available") == 98:
                    break
            await on_a.close()
        await eventually(lambda: _numsub_zero(listeners), what="no process listens once the readers left")
    finally:
        await r.aclose()


async def _numsub_zero(listeners) -> bool:
    return set((await listeners()).values()) == {0}
