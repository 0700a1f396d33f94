"""/ws/orders: staff serving a customer follow that customer's orders live (and only theirs)."""
from __future__ import annotations

import asyncio

import aiohttp
import orjson

from harness import Livecart
from livecart.server.routes import feeds as feed_routes
from livecart.server.services import SERVICES
from test_checkout import Feed
from test_metrics import scrape, value
from test_records import paid_order, stocked
from yclient import eventually


async def test_an_operator_follows_the_customers_orders_and_no_one_elses(lc: Livecart, session) -> None:
    admin = await stocked(lc)
    otto = lc.token("otto", "operator")
    assert (await lc.call("GET", "/api/customers/ann", otto))[0] == 200  # the lookup
    feed = await Feed(lc, f"/ws/orders?customer=ann&token={otto}").start()
    mine = await paid_order(lc, "ann")
    await paid_order(lc, "bob")  # another customer's order never reaches Ann's followers
    tracking = {"carrier": "Royal Mail", "number": "RM1", "url": "https://track.example/RM1"}
    assert (await lc.call("POST", f"/api/orders/{mine}/status", admin,
                          json={"status": "dispatched", "tracking": tracking}))[0] == 200
    assert (await lc.call("POST", f"/api/orders/{mine}/status", admin, json={"status": "delivered"}))[0] == 200
    await eventually(lambda: [e.get("status") for e in feed.events][-1:] == ["delivered"], what="delivered")
    assert {e["customerId"] for e in feed.events} == {"ann"}
    assert {e["type"] for e in feed.events} == {"order.created", "order.status"}  # no cart or discount events
    assert [e["status"] for e in feed.events] == ["awaiting_payment", "confirmed", "dispatched", "delivered"]
    assert next(e for e in feed.events if e["status"] == "dispatched")["tracking"] == tracking
    # counted as what it is: an operator's reader of the order feed
    assert value(await scrape(lc), "livecart_connections", kind="events", role="operator", endpoint="/ws/orders") == 1


async def test_the_order_feed_is_refused_to_whoever_may_not_list_the_orders(lc: Livecart, session) -> None:
    base = f"ws://{lc.config.host}:{lc.config.port}"
    for path, code in ((f"/ws/orders?customer=ann&token={lc.token('otto', 'operator')}", 4403),  # no lookup yet
                       (f"/ws/orders?customer=ann&token={lc.token('eve')}", 4403),  # another customer
                       (f"/ws/orders?customer=ann&token={lc.token('sam', 'assistant')}", 4403),  # not serving her
                       (f"/ws/orders?token={lc.token('otto', 'operator')}", 4403),  # whose?
                       ("/ws/orders?customer=ann", 4401)):
        ws = await session.ws_connect(base + path)
        await ws.receive()
        assert ws.close_code == code, path


# -- access is the reader's for as long as it lasts, not only when it connects ---------------------

class Socket:
    """A reader of /ws/orders: the events it got, and the code and reason of the server's close frame."""

    def __init__(self, lc: Livecart, path: str) -> None:
        self.lc, self.path = lc, path
        self.events: list[dict] = []
        self.closed: tuple[int | None, str] | None = None

    async def start(self) -> "Socket":
        self.ws = await self.lc.session.ws_connect(f"ws://{self.lc.config.host}:{self.lc.config.port}{self.path}")
        self.task = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        while True:
            msg = await self.ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.events.append(orjson.loads(msg.data))
            elif msg.type is aiohttp.WSMsgType.CLOSE:  # the server's own code (see tests/hardening/ws_attack.py)
                self.closed = (msg.data, msg.extra or "")
                return
            elif msg.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                self.closed = (self.ws.close_code, "")
                return


class Stream:
    """A reader of /api/orders/events: the events it got, and whether the server ended the stream."""

    def __init__(self, lc: Livecart, path: str) -> None:
        self.lc, self.path = lc, path
        self.events: list[dict] = []
        self.ended = False

    async def start(self) -> "Stream":
        self.response = await self.lc.session.get(self.lc.base + self.path)
        assert self.response.status == 200
        self.task = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        async for raw in self.response.content:
            line = raw.decode().strip()
            if line.startswith("data:"):
                self.events.append(orjson.loads(line[5:]))
        self.ended = True
        self.response.release()


def statuses(reader: Socket | Stream) -> list[str]:
    return [e["status"] for e in reader.events if e.get("type") in ("order.created", "order.status")]


async def following_ann(lc: Livecart, token: str) -> tuple[Socket, Stream, str]:
    """`token`'s readers of Ann's orders, by websocket and SSE, once they have seen an order of hers paid."""
    socket = await Socket(lc, f"/ws/orders?customer=ann&token={token}").start()
    stream = await Stream(lc, f"/api/orders/events?customer=ann&token={token}").start()
    order = await paid_order(lc, "ann")
    await eventually(lambda: statuses(socket) == statuses(stream) == ["awaiting_payment", "confirmed"],
                     what="Ann's order on both feeds")
    return socket, stream, order


async def test_a_kiosks_feed_ends_when_the_customer_signs_out_there(lc: Livecart) -> None:
    admin = await stocked(lc)
    code = (await lc.call("POST", "/api/kiosk-codes", lc.token("ann")))[1]["code"]
    kiosk = lc.token("k1", "kiosk")
    assert (await lc.call("POST", "/api/kiosks/k1/sessions", kiosk, json={"code": code}))[0] == 201
    socket, stream, order = await following_ann(lc, kiosk)
    assert (await lc.call("DELETE", "/api/kiosks/k1/sessions", kiosk))[0] == 200
    assert (await lc.call("GET", "/api/orders?customer=ann", kiosk))[0] == 403
    # the sign-out itself ends both feeds, before any further event of Ann's
    await eventually(lambda: socket.closed is not None and stream.ended, what="both feeds ended at sign-out")
    assert socket.closed is not None and socket.closed[0] == 4403 and "access ended" in socket.closed[1], socket.closed
    assert (await lc.call("POST", f"/api/orders/{order}/status", admin, json={"status": "dispatched"}))[0] == 200
    assert statuses(socket) == statuses(stream) == ["awaiting_payment", "confirmed"]


async def test_an_operators_feed_delivers_nothing_once_its_lookup_has_run_out(lc: Livecart) -> None:
    admin = await stocked(lc)
    otto = lc.token("otto", "operator")
    assert (await lc.call("GET", "/api/customers/ann", otto))[0] == 200  # the lookup (8 h)
    socket, stream, order = await following_ann(lc, otto)
    await lc.app[SERVICES].store.delete_record("lookup", "otto|ann")  # what its expiry does: nobody is told
    assert (await lc.call("GET", "/api/orders?customer=ann", otto))[0] == 403
    assert (await lc.call("POST", f"/api/orders/{order}/status", admin, json={"status": "dispatched"}))[0] == 200
    await eventually(lambda: socket.closed is not None and stream.ended, what="both feeds ended")
    assert socket.closed is not None and socket.closed[0] == 4403, socket.closed
    assert "look the customer up first" in socket.closed[1], socket.closed
    assert statuses(socket) == statuses(stream) == ["awaiting_payment", "confirmed"]  # not "dispatched"


async def test_an_idle_feed_ends_too_once_access_has_run_out(lc: Livecart, monkeypatch) -> None:
    monkeypatch.setattr(feed_routes, "ACCESS_RECHECK_SECONDS", 0.05)  # every minute in production
    await stocked(lc)
    otto = lc.token("otto", "operator")
    assert (await lc.call("GET", "/api/customers/ann", otto))[0] == 200
    socket, stream, _ = await following_ann(lc, otto)
    await lc.app[SERVICES].store.delete_record("lookup", "otto|ann")
    await eventually(lambda: socket.closed is not None and stream.ended, what="both feeds ended with nothing to send")
    assert socket.closed is not None and socket.closed[0] == 4403, socket.closed


async def test_readers_whose_access_lasts_are_not_disturbed(lc: Livecart) -> None:
    admin = await stocked(lc)
    otto = lc.token("otto", "operator")
    assert (await lc.call("GET", "/api/customers/ann", otto))[0] == 200
    readers = [await Socket(lc, f"/ws/orders?customer=ann&token={token}").start()
               for token in (otto, lc.token("ann"), admin)]
    everything = await Socket(lc, f"/ws/orders?token={admin}").start()
    code = (await lc.call("POST", "/api/kiosk-codes", lc.token("ann")))[1]["code"]
    kiosk = lc.token("k1", "kiosk")
    assert (await lc.call("POST", "/api/kiosks/k1/sessions", kiosk, json={"code": code}))[0] == 201
    assert (await lc.call("DELETE", "/api/kiosks/k1/sessions", kiosk))[0] == 200  # another's access ends
    order = await paid_order(lc, "ann")
    assert (await lc.call("POST", f"/api/orders/{order}/status", admin, json={"status": "dispatched"}))[0] == 200
    for reader in (*readers, everything):
        await eventually(lambda: statuses(reader)[-1:] == ["dispatched"], what="dispatched")
        assert reader.closed is None


async def test_a_feed_whose_access_cannot_be_read_sends_nothing_and_asks_for_a_reconnect(lc: Livecart,
                                                                                          monkeypatch) -> None:
    admin = await stocked(lc)
    otto = lc.token("otto", "operator")
    assert (await lc.call("GET", "/api/customers/ann", otto))[0] == 200
    socket, stream, order = await following_ann(lc, otto)

    async def store_away(*args: object) -> None:
        raise OSError("the store is away")
    monkeypatch.setattr(feed_routes.profiles, "orders_customer", store_away)
    assert (await lc.call("POST", f"/api/orders/{order}/status", admin, json={"status": "dispatched"}))[0] == 200
    await eventually(lambda: socket.closed is not None and stream.ended, what="both feeds ended")
    assert socket.closed == (1011, "storage failed; reconnect"), socket.closed  # not final: the client reconnects
    assert statuses(socket) == statuses(stream) == ["awaiting_payment", "confirmed"]
