"""deploy/haproxy/livecart.cfg in front of two livecart processes on one Redis (Debian's haproxy):
one owner per cart, a client that lands elsewhere still converges and never oversells, and a killed
process's carts move to the other with nothing acknowledged lost; a rolling restart (SIGTERM, one process at a
time) under load loses nothing and every client converges."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from pathlib import Path

import aiohttp
import pytest

from harness import free_port
from processes import Loopback, ServerProcess
from redis_server import RedisServer
from test_scaleout import ADMIN, add, call, client, new_cart, setup_shop, token
from yclient import YClient, eventually

CONFIG = Path(__file__).parents[2] / "deploy" / "haproxy" / "livecart.cfg"
SERVED_BY = "X-Livecart-Server"


class HAProxy(Loopback):
    def __init__(self, directory: Path, backends: list[ServerProcess]) -> None:
        self.dir, self.port = directory, free_port()
        self.env = {**os.environ, "LIVECART_BIND": f"127.0.0.1:{self.port}",
                    **{f"LIVECART_APP{i + 1}": f"127.0.0.1:{p.port}" for i, p in enumerate(backends)}}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "HAProxy":
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            pytest.fail("haproxy is not installed (make system-deps installs Debian's haproxy)")
        self.log = open(self.dir / "haproxy.log", "ab")
        self.proc = subprocess.Popen([binary, "-db", "-f", str(CONFIG)], env=self.env,
                                     stdout=self.log, stderr=self.log)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def shop(tmp_path: Path):
    redis = RedisServer(tmp_path / "redis").start()
    procs = [ServerProcess(tmp_path / f"data{i}", "--store", redis.url, "--bus", redis.url).start()
             for i in range(2)]
    proxy = HAProxy(tmp_path, procs).start()
    yield proxy, procs
    proxy.stop()
    for p in procs:
        p.stop()
    redis.kill()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True)) as s:
        yield s


async def served_by(http: aiohttp.ClientSession, url: str, tok: str) -> str:
    async with http.get(url, headers={"Authorization": f"Bearer {tok}"}) as r:
        assert r.status == 200, await r.text()
        return r.headers[SERVED_BY]


async def both_up(http: aiohttp.ClientSession, proxy: HAProxy) -> None:
    """Until the health checks have both processes up: round robin answers from each."""
    async def seen() -> bool:
        names = set()
        for _ in range(4):
            try:
                names.add(await served_by(http, proxy.base + "/healthz", ADMIN))
            except (aiohttp.ClientError, AssertionError):
                return False
        return names == {"app1", "app2"}
    await eventually(seen, what="haproxy sees both processes")


async def test_every_client_of_a_cart_lands_on_the_same_process(shop, http) -> None:
    proxy, _ = shop
    await both_up(http, proxy)
    owners: dict[str, set[str]] = {}
    for i in range(16):
        cart = await new_cart(http, proxy.base, f"u{i}")
        seen = owners.setdefault(cart, set())
        for _ in range(3):  # three devices on the cart's websocket, and its REST calls
            async with http.ws_connect(proxy.ws(f"/ws/carts/{cart}?token={token(f'u{i}')}")) as ws:
                seen.add(ws._response.headers[SERVED_BY])
            seen.add(await served_by(http, f"{proxy.base}/api/carts/{cart}", token(f"u{i}")))
    assert all(len(s) == 1 for s in owners.values()), owners
    assert {s.pop() for s in owners.values()} == {"app1", "app2"}  # and the carts spread


async def test_a_client_landing_on_the_other_process_converges_and_never_oversells(shop, http) -> None:
    proxy, procs = shop
    await both_up(http, proxy)
    await setup_shop(http, proxy.base, on_hand=5)
    by_name = {"app1": procs[0], "app2": procs[1]}
    clients = []
    for i in range(10):
        cart = await new_cart(http, proxy.base, f"s{i}")
        owner = await served_by(http, f"{proxy.base}/api/carts/{cart}", token(f"s{i}"))
        elsewhere = by_name["app2" if owner == "app1" else "app1"]
        via_proxy = await client(http, proxy, cart, f"s{i}")
        stray = await client(http, elsewhere, cart, f"s{i}")  # what a round-robin balancer would do
        add(via_proxy, "a", who=f"s{i}")
        add(stray, "b", who=f"s{i}")
        clients.append((via_proxy, stray))
    await eventually(lambda: all(set(a.lines) == set(b.lines) == {"a", "b"} for a, b in clients),
                     what="both devices of every cart see both lines")

    def holds() -> list[dict | None]:
        return [a.snapshot()["server"]["holds"].get(k) for a, _ in clients for k in ("a", "b")]
    await eventually(lambda: all(holds()), what="all 20 lines decided")
    assert sum(h["qty"] for h in holds()) == 5  # 20 wants, 5 units: exactly 5 held, none oversold
    status, levels = await call(http, "GET", f"{proxy.base}/api/stock?skus=MUG")
    assert status == 200 and levels["MUG"]["held"] == 5 and levels["MUG"]["onHand"] == 5


async def test_a_killed_process_carts_move_to_the_other_with_nothing_acknowledged_lost(shop, http) -> None:
    proxy, procs = shop
    await both_up(http, proxy)
    await setup_shop(http, proxy.base, on_hand=100)
    by_name = {"app1": procs[0], "app2": procs[1]}
    carts = [await new_cart(http, proxy.base, f"k{i}") for i in range(8)]
    owner = {c: await served_by(http, f"{proxy.base}/api/carts/{c}", token(f"k{i}")) for i, c in enumerate(carts)}
    acked: dict[str, set[str]] = {c: set() for c in carts}
    for i, cart in enumerate(carts):
        for _ in range(3):
            status, body = await call(http, "POST", f"{proxy.base}/api/carts/{cart}/lines", token(f"k{i}"),
                                      json={"sku": "MUG", "qty": 1})
            assert status == 201, body
            acked[cart].add(body["lineId"])
    victim = owner[carts[0]]
    by_name[victim].kill()  # SIGKILL while it owns carts

    async def all_there() -> bool:
        for i, cart in enumerate(carts):
            try:
                status, body = await call(http, "GET", f"{proxy.base}/api/carts/{cart}", token(f"k{i}"))
            except aiohttp.ClientError:
                return False
            if status != 200 or not acked[cart] <= set(body["lines"]):
                return False
        return True
    await eventually(all_there, what="every acknowledged line, served by the survivor")
    survivor = "app2" if victim == "app1" else "app1"
    moved = [c for c in carts if owner[c] == victim]
    for cart in moved:  # its clients now land on the survivor, websocket and REST alike
        i = carts.index(cart)
        assert await served_by(http, f"{proxy.base}/api/carts/{cart}", token(f"k{i}")) == survivor
        again = await client(http, proxy, cart, f"k{i}")
        assert acked[cart] <= set(again.lines)
        await again.close()
    stayed = [c for c in carts if owner[c] != victim]
    for cart in stayed:  # consistent hashing: carts of the survivor did not move
        assert await served_by(http, f"{proxy.base}/api/carts/{cart}", token(f"k{carts.index(cart)}")) == survivor


class Device:
    """A y-websocket-like client through the balancer: on a close (1012 at a restart) it reconnects with
    the document it has, so whatever it wrote is sent again when it resyncs (as the stock provider does)."""

    def __init__(self, http: aiohttp.ClientSession, proxy: HAProxy, cart: str, owner: str) -> None:
        self.http, self.url = http, proxy.ws(f"/ws/carts/{cart}?token={token(owner)}")
        self.current: YClient | None = None
        self.codes: list[int | None] = []
        self.stopping = False

    async def connect(self) -> None:
        while True:
            fresh = YClient(self.http, self.url)
            if self.current is not None:  # what this device had, its own unsent edits included
                fresh.doc.apply_update(self.current.doc.get_update())
            try:
                await fresh.connect()
                await fresh.wait_synced(10)
                self.current = fresh
                return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                if fresh.ws is not None:
                    await fresh.ws.close()
                await asyncio.sleep(0.2)  # the process is down and the balancer has not noticed yet

    async def run(self) -> None:
        await self.connect()
        while not self.stopping:
            assert self.current is not None
            await self.current.closed.wait()
            self.codes.append(self.current.close_code)
            if (self.current.close_code or 0) >= 4400:
                return  # final, as for the stock client
            if not self.stopping:
                await self.connect()

    def write(self, line: str, qty: int) -> bool:
        current = self.current
        if current is None or current.closed.is_set():
            return False
        if line in current.lines:
            current.lines[line]["qty"] = qty
        else:
            add(current, line, qty)
        return True

    def lines(self) -> dict[str, int]:
        return {k: v["qty"] for k, v in self.current.snapshot()["lines"].items()} if self.current is not None else {}


async def test_a_rolling_restart_under_load_loses_nothing_and_every_client_converges(shop, http) -> None:
    proxy, procs = shop
    await both_up(http, proxy)
    await setup_shop(http, proxy.base, on_hand=100_000)
    carts = [await new_cart(http, proxy.base, f"r{i}") for i in range(4)]
    devices = {cart: [Device(http, proxy, cart, f"r{i}") for _ in range(2)] for i, cart in enumerate(carts)}
    running = [asyncio.ensure_future(d.run()) for ds in devices.values() for d in ds]
    await eventually(lambda: all(d.current is not None for ds in devices.values() for d in ds), what="all connected")
    written: dict[str, dict[str, int]] = {cart: {} for cart in carts}
    writing = True

    async def load() -> None:
        n = 0
        while writing:  # new lines up to 40 (the cart's limit is 100), then changes of their quantities
            line, qty = f"w{n % 40}", 1 + (n // 40) % 5
            for cart, (first, _) in devices.items():
                if first.write(line, qty):
                    written[cart][line] = qty
            n += 1
            await asyncio.sleep(0.02)

    loader = asyncio.ensure_future(load())
    try:
        for proc in procs:  # one process at a time, as a deployment does
            await eventually(lambda: sum(map(len, written.values())) >= 40, what="edits under way")
            await asyncio.sleep(0.5)
            assert proc.proc is not None
            proc.proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.proc.wait, 60) == 0
            proc.start()  # same port, same Redis
            await both_up(http, proxy)
        writing = False
        await loader

        async def converged() -> bool:
            return all(pair[0].lines() == pair[1].lines() == written[cart] for cart, pair in devices.items())
        await eventually(converged, timeout=60, what="every device of every cart converged, every edit there")
        for i, cart in enumerate(carts):  # and the store has it all: a newcomer reads every line
            newcomer = await client(http, proxy, cart, f"r{i}")
            assert {k: v["qty"] for k, v in newcomer.snapshot()["lines"].items()} == written[cart]
            await newcomer.close()
        codes = [code for ds in devices.values() for d in ds for code in d.codes]
        assert codes and set(codes) <= {1012}, codes  # every socket was told "service restart"
    finally:
        writing = False
        for ds in devices.values():
            for d in ds:
                d.stopping = True
                if d.current is not None:
                    await d.current.close()
        await asyncio.gather(*running, loader, return_exceptions=True)
