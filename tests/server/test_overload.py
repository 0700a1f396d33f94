"""Overload without collapse: a client flooding its cart is taken a merged batch at a time and, past its
inbox's bound, read no faster than its room keeps up, while other clients' edits are still accepted; its
last state, and everything anyone else sent, is stored and converges (a real `livecart serve` process)."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from livecart.crdt.cart import new_line
from livecart.crdt.protocol import Kind, parse
from processes import ServerProcess
from test_scaleout import call, client, new_cart, setup_shop, token
from yclient import YClient, eventually

FLOOD = 3000


@pytest.fixture
def server(tmp_path: Path):
    proc = ServerProcess(tmp_path / "data", "--max-messages-per-second", "1000000",
                         "--max-inbox-bytes", "4096", "--max-edits-in-flight", "4").start()
    yield proc
    proc.stop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        yield s


def updates(c: YClient) -> int:
    return sum(1 for frame in c.received if parse(frame).kind is Kind.UPDATE)


async def test_a_flood_is_pushed_back_while_another_client_is_still_accepted_and_nothing_is_lost(server, http) -> None:
    await setup_shop(http, server.base, on_hand=1_000_000)
    flood_cart, calm_cart = await new_cart(http, server.base, "fl"), await new_cart(http, server.base, "ca")
    flooder, watcher = await client(http, server, flood_cart, "fl"), await client(http, server, flood_cart, "fl")
    calm, peer = await client(http, server, calm_cart, "ca"), await client(http, server, calm_cart, "ca")
    flooder.lines["x"] = new_line("MUG", 1, "fl", "web", int(time.time() * 1000))
    await eventually(lambda: "x" in watcher.lines, what="the flooder's line")
    before = updates(watcher)

    async def calm_edits() -> None:  # a line at a time, as a person adds them
        for i in range(20):
            calm.lines[f"c{i}"] = new_line("MUG", 1, "ca", "web", int(time.time() * 1000))
            await asyncio.sleep(0.02)
    calming = asyncio.ensure_future(calm_edits())
    for i in range(FLOOD):  # as fast as the client can: one update message each
        flooder.lines["x"]["qty"] = 1 + i % 99
    last = 1 + (FLOOD - 1) % 99
    await calming

    # the other client's every edit was accepted and reached its peer, while the flood was on
    await eventually(lambda: {f"c{i}" for i in range(20)} <= set(peer.lines), what="every calm edit at its peer")
    # the flood's last state reached its watcher and the store: nothing it sent was lost
    await eventually(lambda: watcher.lines["x"]["qty"] == last, what="the flood's last edit relayed")
    await eventually(lambda: watcher.snapshot()["lines"] == flooder.snapshot()["lines"], what="flood cart converged")
    await eventually(lambda: peer.snapshot()["lines"] == calm.snapshot()["lines"], what="calm cart converged")
    for cart, owner, want in ((flood_cart, "fl", {"x": last}), (calm_cart, "ca", {f"c{i}": 1 for i in range(20)})):
        status, body = await call(http, "GET", f"{server.base}/api/carts/{cart}", token(owner))
        assert status == 200 and {k: v["qty"] for k, v in body["lines"].items()} == want
    # pushed back, not cut off: merged batches reached the watcher, far fewer than the messages sent
    assert updates(watcher) - before < FLOOD
    assert not flooder.closed.is_set() and not calm.closed.is_set()
    late = await client(http, server, flood_cart, "fl")  # and a fresh client loads exactly that
    assert late.snapshot()["lines"] == flooder.snapshot()["lines"]
    for c in (flooder, watcher, calm, peer, late):
        await c.close()
