"""Graceful shutdown of a real `livecart serve`: SIGTERM during a burst of edits closes every socket with 1012,
commits everything it acknowledged, exits 0, and a restart on the same data dir has every acknowledged edit."""
from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from harness import SECRET
from livecart.crdt.cart import new_line
from livecart.server import auth
from processes import ServerProcess
from yclient import WAIT, YClient, eventually

ADMIN = auth.mint(SECRET, "root", "admin")


async def put(session: aiohttp.ClientSession, server: ServerProcess, path: str, body: dict[str, Any]) -> None:
    async with session.put(server.base + path, json=body, headers={"Authorization": f"Bearer {ADMIN}"}) as r:
        assert r.status == 200, await r.text()


async def new_cart(session: aiohttp.ClientSession, server: ServerProcess, token: str) -> str:
    async with session.post(server.base + "/api/carts", json={"channel": "web"},
                            headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 201
        return (await r.json())["cartId"]


async def test_sigterm_during_a_burst_loses_nothing_acknowledged_and_exits_0(
        tmp_path: Path, session: aiohttp.ClientSession) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, "--shutdown-timeout", "10").start()
    alice, bob = auth.mint(SECRET, "alice", "customer"), auth.mint(SECRET, "bob", "customer")
    await put(session, server, "/api/catalog/TEE", {"name": "Tee", "price": 1500, "maxQty": 5})
    await put(session, server, "/api/stock/TEE", {"onHand": 100_000})
    cart, bobs = await new_cart(session, server, alice), await new_cart(session, server, bob)
    editor = await YClient(session, server.ws(f"/ws/carts/{cart}?token={alice}")).connect()
    watcher = await YClient(session, server.ws(f"/ws/carts/{cart}?token={alice}")).connect()
    elsewhere = await YClient(session, server.ws(f"/ws/carts/{bobs}?token={bob}")).connect()
    for client in (editor, watcher, elsewhere):
        await client.wait_synced()
    stock = await session.ws_connect(server.ws("/ws/stock?skus=TEE"))

    async def burst() -> int:
        n = 0
        while not editor.closed.is_set():
            editor.lines[f"l{n}"] = new_line("TEE", 1 + n % 5, "alice", "web", n)
            n += 1
            await asyncio.sleep(0.002)
        return n

    editing = asyncio.ensure_future(burst())
    await eventually(lambda: len(watcher.lines) >= 50, what="the burst under way")
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    written = await asyncio.wait_for(editing, WAIT)
    for client in (editor, watcher, elsewhere):
        code, reason = await client.wait_closed()
        assert code == 1012, (code, reason)
    stock_close = await asyncio.wait_for(stock.receive(), WAIT)
    while stock_close.type is aiohttp.WSMsgType.TEXT:  # the levels and viewers sent before it
        stock_close = await asyncio.wait_for(stock.receive(), WAIT)
    assert stock_close.type is aiohttp.WSMsgType.CLOSE and stock_close.data == 1012
    assert await asyncio.to_thread(server.proc.wait, 60) == 0
    log = (tmp_path / f"server-{server.port}.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    with sqlite3.connect(data / "livecart.db") as db:  # every room was compacted: a snapshot, no update left
        assert db.execute("SELECT count(*) FROM cart_updates WHERE cart_id = ?", (cart,)).fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM cart_snapshots WHERE cart_id = ?", (cart,)).fetchone() == (1,)

    # acknowledged: what another client was sent, and the lines the server answered with a hold
    relayed = set(watcher.snapshot()["lines"])
    answered = set(editor.snapshot()["server"].get("holds", {}))
    assert relayed and answered and len(relayed) <= written
    again = ServerProcess(data).start()
    try:
        reader = await YClient(session, again.ws(f"/ws/carts/{cart}?token={alice}")).connect()
        await reader.wait_synced()
        restored = reader.snapshot()
        assert relayed <= set(restored["lines"]), sorted(relayed - set(restored["lines"]))[:10]
        assert answered <= set(restored["server"].get("holds", {}))
        await reader.close()
    finally:
        again.stop()
    await stock.close()


async def test_a_client_that_never_answers_the_close_does_not_hold_the_exit(
        tmp_path: Path, session: aiohttp.ClientSession) -> None:
    server = ServerProcess(tmp_path / "data", "--shutdown-timeout", "1").start()
    alice = auth.mint(SECRET, "alice", "customer")
    cart = await new_cart(session, server, alice)
    # a peer that reads nothing and never sends its close frame back
    mute = await session.ws_connect(server.ws(f"/ws/carts/{cart}?token={alice}"), autoclose=False, heartbeat=None)
    feed = await session.ws_connect(server.ws(f"/ws/admin?token={ADMIN}"), autoclose=False, heartbeat=None)
    await eventually(lambda: _connections(server) == 1, what="the cart socket joined")
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(server.proc.wait, 60) == 0
    log = (tmp_path / f"server-{server.port}.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    await mute.close()
    await feed.close()


def _connections(server: ServerProcess) -> int:
    with urllib.request.urlopen(server.base + "/healthz", timeout=10) as r:
        return json.loads(r.read())["connections"]
