"""GET /metrics: Prometheus text of each app's own registry, whose figures move with real traffic over real
websockets and HTTP; a scrape during a Redis outage still answers."""
from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from harness import Livecart, free_port, make_config
from livecart.crdt.cart import new_line
from yclient import eventually


async def scrape(lc: Livecart) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with lc.session.get(lc.base + "/metrics") as r:
        assert r.status == 200 and r.content_type == "text/plain"
        text = await r.text()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(figures: dict, name: str, **labels: str) -> float:
    return figures.get((name, tuple(sorted(labels.items()))), 0.0)


CART = "/ws/carts/{cartId}"


async def stock(lc: Livecart, sku: str, on_hand: int) -> None:
    assert (await lc.call("PUT", f"/api/stock/{sku}", lc.token("root", "admin"), json={"onHand": on_hand}))[0] == 200


async def test_figures_move_with_real_traffic(lc: Livecart, tmp_path: Path, session: aiohttp.ClientSession) -> None:
    await stock(lc, "MUG", 1)
    await stock(lc, "TEE", 100)
    other = await Livecart(make_config(tmp_path / "other"), session).start()  # a second app in the same process
    try:
        before = await scrape(lc)
        assert value(before, "livecart_rooms") == 0
        cart = await lc.cart("alice")
        alice = await lc.client(cart, lc.token("alice"))
        admin = await lc.client(cart, lc.token("root", "admin"))
        figures = await scrape(lc)
        assert value(figures, "livecart_connections", kind="cart", role="customer", endpoint=CART) == 1
        assert value(figures, "livecart_connections", kind="cart", role="admin", endpoint=CART) == 1
        assert value(figures, "livecart_rooms") == 1
        assert value(figures, "livecart_http_requests_total", method="POST", route="/api/carts", status="201") == 1

        feed = await session.ws_connect(f"ws://{lc.config.host}:{lc.config.port}/ws/admin?token={lc.token('root', 'admin')}")
        alice.lines["a"] = new_line("TEE", 2, "alice", "web", 1)
        alice.lines["b"] = new_line("MUG", 1, "alice", "web", 2)
        admin.lines["c"] = new_line("MUG", 1, "root", "store", 3)  # the last mug is gone: unavailable
        await eventually(lambda: len(alice.snapshot()["server"].get("holds", {})) == 3, what="three decisions")
        figures = await scrape(lc)
        assert value(figures, "livecart_edits_accepted_total") >= 2  # updates that waited together merge into one
        assert value(figures, "livecart_stock_decisions_total", status="held") >= 2
        assert value(figures, "livecart_stock_decisions_total", status="unavailable") >= 1
        assert value(figures, "livecart_holds", status="held") == 2
        assert value(figures, "livecart_holds", status="unavailable") == 1
        assert value(figures, "livecart_relay_seconds_count") >= 2
        assert value(figures, "livecart_connections", kind="events", role="admin", endpoint="/ws/admin") == 1
        assert value(figures, "livecart_bus_lag_seconds_count", topic="events") >= 2  # the feed heard the edits' events
        await feed.close()
        assert value(figures, "livecart_commit_seconds_count") >= 2
        assert value(figures, "livecart_relay_seconds_bucket", le="+Inf") == value(figures, "livecart_relay_seconds_count")

        # rejections, by rule and close code
        rogue = await lc.client(cart, lc.token("alice"))
        rogue.lines["x"] = new_line("NO-SUCH-SKU", 1, "alice", "web", 4)
        assert (await rogue.wait_closed())[0] == 4400
        big = await lc.client(cart, lc.token("alice"))
        await big.send_raw(b"\0" * (lc.config.max_message_bytes + 10))
        assert (await big.wait_closed())[0] == 4413
        assert (await lc.call("GET", "/api/no-such-route"))[0] == 404
        figures = await scrape(lc)
        assert value(figures, "livecart_edits_rejected_total", rule="unknown_sku", code="4400") == 1
        assert value(figures, "livecart_edits_rejected_total", rule="frame_size", code="4413") == 1
        assert value(figures, "livecart_socket_closes_total", code="4400") == 1
        assert value(figures, "livecart_socket_closes_total", code="4413") == 1
        assert value(figures, "livecart_http_requests_total", method="GET", route="unmatched", status="404") == 1


        async def rejected_gone() -> bool:
            return value(await scrape(lc), "livecart_connections", kind="cart", role="customer", endpoint=CART) == 1
        await eventually(rejected_gone, what="the rejected sockets gone from the count")
        assert value(figures, "livecart_store_up") == 1
        assert value(figures, "livecart_outbox_depth", outbox="outbox") == 0

        # the other app counted none of it: each has its own registry
        elsewhere = await scrape(other)
        assert value(elsewhere, "livecart_edits_accepted_total") == 0 and value(elsewhere, "livecart_rooms") == 0
    finally:
        await other.stop()


async def test_expiries_and_webhook_failures(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    dead_hook = f"http://127.0.0.1:{free_port()}/hooks"
    config = make_config(tmp_path, hold_ttl_seconds=1.0, webhook_url=dead_hook, webhook_secret="w" * 32,
                         webhook_retry_base=0.05)
    lc = await Livecart(config, session).start()
    try:
        await lc.product("TEE")
        await stock(lc, "TEE", 10)
        cart = await lc.cart("alice")
        status, line = await lc.call("POST", f"/api/carts/{cart}/lines", lc.token("alice"), json={"sku": "TEE", "qty": 1})
        assert status == 201

        async def held() -> bool:
            holds = (await lc.call("GET", f"/api/carts/{cart}", lc.token("alice")))[1]["holds"]
            return holds.get(line["lineId"], {}).get("status") == "held"
        await eventually(held, what="the line held")
        status, order = await lc.call("POST", f"/api/carts/{cart}/checkout", lc.token("alice"))
        assert status == 201, order  # order.created goes to a webhook nobody receives

        async def failing() -> bool:
            figures = await scrape(lc)
            return (sum(v for (name, _), v in figures.items() if name == "livecart_outbox_failures_total") >= 2
                    and value(figures, "livecart_outbox_depth", outbox="outbox") >= 1)
        await eventually(failing, what="webhook failures counted, the event still in the outbox")
        other = await lc.cart("bob")
        bob = await lc.client(other, lc.token("bob"))
        bob.lines["b"] = new_line("TEE", 1, "bob", "web", 1)
        await eventually(lambda: bob.snapshot()["server"].get("holds", {}).get("b", {}).get("status") == "expired",
                         what="bob's hold ran out")
        assert value(await scrape(lc), "livecart_hold_expiries_total") >= 1
    finally:
        await lc.stop()


async def test_a_scrape_during_a_redis_outage_answers(redis_server, tmp_path: Path, session: aiohttp.ClientSession) -> None:
    config = make_config(tmp_path, store=redis_server.url, bus=redis_server.url)
    lc = await Livecart(config, session).start()
    try:
        await lc.product("TEE")
        viewer = await session.ws_connect(f"ws://{lc.config.host}:{lc.config.port}/ws/stock?skus=TEE")
        assert value(await scrape(lc), "livecart_store_up") == 1
        redis_server.kill()
        figures: Any = await scrape(lc)  # answers 200 (scrape() checks), with what it could not read as such
        assert value(figures, "livecart_store_up") == 0
        assert value(figures, "livecart_connections", kind="stock", role="anonymous", endpoint="/ws/stock") == 1
        await viewer.close()
        redis_server.start()

        async def back() -> bool:
            return value(await scrape(lc), "livecart_store_up") == 1
        await eventually(back, what="the store up again")

        async def bus_back() -> bool:
            return value(await scrape(lc), "livecart_bus_reconnects_total") >= 1
        await eventually(bus_back, what="the bus reconnect counted")
    finally:
        await lc.stop()


async def raw_socket(lc: Livecart, path: str) -> asyncio.StreamWriter:
    """A websocket opened by hand over TCP, so that the test can drop it the way a crashed browser or a
    lost network does: no close frame, the connection reset (`abort`)."""
    reader, writer = await asyncio.open_connection(lc.config.host, lc.config.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET {path} HTTP/1.1\r\nHost: {lc.config.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    status = await reader.readline()
    assert b" 101 " in status, status
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    return writer


async def test_every_long_lived_connection_is_counted_by_endpoint_until_it_goes(
        lc: Livecart, session: aiohttp.ClientSession) -> None:
    """Cart sockets, the stock feed (storefront browsers), the shop floor and a customer's own feed, over
    websocket or Server-Sent Events: counted while open, by endpoint, and no more once gone, however."""
    ws = f"ws://{lc.config.host}:{lc.config.port}"
    admin, alice = lc.token("root", "admin"), lc.token("alice")
    cart = await lc.cart("alice")
    cart_socket = await raw_socket(lc, f"/ws/carts/{cart}?token={alice}")
    browser = await session.ws_connect(f"{ws}/ws/stock?skus=TEE")  # anonymous storefront
    signed_in = await session.ws_connect(f"{ws}/ws/stock?skus=TEE,MUG&token={alice}")
    await browser.send_str('{"type": "view", "sku": "TEE"}')  # browsing presence rides on the same socket
    crashed_browser = await raw_socket(lc, "/ws/stock?skus=MUG")
    floor = await session.ws_connect(f"{ws}/ws/admin?token={admin}")
    crashed_floor = await raw_socket(lc, f"/ws/admin?token={admin}")
    own = await raw_socket(lc, f"/ws/me?token={alice}")
    stock_stream = await session.get(f"{lc.base}/api/stock/events?skus=TEE")
    floor_stream = await session.get(f"{lc.base}/api/admin/events?token={admin}")
    assert stock_stream.status == 200 and floor_stream.status == 200

    expected = {("cart", "customer", CART): 1, ("stock", "anonymous", "/ws/stock"): 2,
                ("stock", "customer", "/ws/stock"): 1, ("stock", "anonymous", "/api/stock/events"): 1,
                ("events", "admin", "/ws/admin"): 2, ("events", "admin", "/api/admin/events"): 1,
                ("events", "customer", "/ws/me"): 1}

    async def counted() -> dict[tuple[str, str, str], float]:
        return {(dict(labels).get("kind"), dict(labels).get("role"), dict(labels).get("endpoint")): n
                for (name, labels), n in (await scrape(lc)).items() if name == "livecart_connections" and n}

    async def as_expected() -> bool:
        return await counted() == expected
    await eventually(as_expected, what="every open connection counted under its endpoint")

    for writer in (cart_socket, crashed_browser, crashed_floor, own):  # gone without a word: reset
        writer.transport.abort()
    await browser.close()
    await signed_in.close()
    await floor.close()
    expected = {("stock", "anonymous", "/api/stock/events"): 1, ("events", "admin", "/api/admin/events"): 1}
    await eventually(as_expected, what="closed and dropped sockets no longer counted")

    stock_stream.close()  # an event stream is seen gone at its next keep-alive write (every 15 s)
    floor_stream.close()
    expected = {}
    await eventually(as_expected, timeout=60, what="the event streams no longer counted")


async def test_bus_lag_is_heard_by_topic_for_cart_relays_stock_and_events(
        redis_server, tmp_path: Path, session: aiohttp.ClientSession) -> None:
    """Two processes over one Redis: the one that hears a cart's update relayed, a stock change and a shop
    event measures each message's age under its topic (a bounded set: never a cart id)."""
    url = redis_server.url
    a = await Livecart(make_config(tmp_path / "a", store=url, bus=url), session).start()
    b = await Livecart(make_config(tmp_path / "b", store=url, bus=url), session).start()
    try:
        await a.product("TEE")
        await stock(a, "TEE", 10)
        cart = await a.cart("alice")
        on_a = await a.client(cart, a.token("alice"))
        on_b = await b.client(cart, b.token("alice"))
        ws = f"ws://{b.config.host}:{b.config.port}"
        floor = await session.ws_connect(f"{ws}/ws/admin?token={b.token('root', 'admin')}")  # b hears events
        viewer = await session.ws_connect(f"{ws}/ws/stock?skus=TEE")  # and stock changes
        on_a.lines["l1"] = new_line("TEE", 2, "alice", "web", 1)  # a relay, a hold (stock moves), a shop event
        await eventually(lambda: "l1" in on_b.snapshot()["lines"], what="the line relayed to the other process")

        async def heard() -> bool:
            figures = await scrape(b)
            return all(value(figures, "livecart_bus_lag_seconds_count", topic=topic) >= 1
                       for topic in ("cart", "stock", "events"))
        await eventually(heard, what="lag measured for a cart relay, a stock change and a shop event")
        figures = await scrape(b)
        topics = {dict(labels).get("topic") for (name, labels) in figures if name.startswith("livecart_bus_lag")}
        assert cart not in topics and topics <= {"cart", "stock", "events", "catalog", "discounts", "rules",
                                                 "groups", "gone", "revoke"}
        assert value(figures, "livecart_bus_lag_seconds_bucket", topic="cart", le="+Inf") == \
            value(figures, "livecart_bus_lag_seconds_count", topic="cart")
        await floor.close()
        await viewer.close()
    finally:
        await a.stop()
        await b.stop()
