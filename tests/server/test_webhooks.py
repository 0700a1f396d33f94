"""Webhooks to a real receiver (a local aiohttp app): signatures, retries, restarts, cart.abandoned."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Awaitable, Callable

import click
import orjson
import pytest
from aiohttp import web

from harness import Livecart, free_port, make_config
from livecart.crdt import CartDoc
from livecart.server import webhooks
from livecart.server.outbox import Outbox
from livecart.server.services import SERVICES
from livecart.server.cli import build_config
from yclient import WAIT, eventually

WH_SECRET = "whsec-" + "y" * 30
BASE = 0.05  # webhook_retry_base for these tests


@dataclass
class Hit:
    at: float  # monotonic, when the request arrived
    attempt: int
    event: dict[str, Any]
    headers: dict[str, str]
    body: bytes
    outcome: str = ""  # "ok", "fail", "hang"


class Receiver:
    """The host platform's endpoint. `rule(event_id, nth request for it)` says how to answer."""

    def __init__(self) -> None:
        self.port = free_port()
        self.hits: list[Hit] = []
        self.rule: Callable[[str, int], str] = lambda event_id, nth: "ok"
        self.release = asyncio.Event()  # ends the hanging answers
        app = web.Application()
        app.router.add_post("/hooks", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.2)
        self.site: web.TCPSite | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> "Receiver":
        await self.runner.setup()
        await self.up()
        return self

    async def up(self) -> None:
        self.site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await self.site.start()

    async def down(self) -> None:
        """Stops listening (new connections are refused); requests already in progress stay open."""
        assert self.site is not None
        await self.site.stop()
        self.site = None

    async def close(self) -> None:
        self.release.set()
        await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        event = json.loads(body)
        hit = Hit(time.monotonic(), int(request.headers["X-Livecart-Delivery-Attempt"]), event,
                  dict(request.headers), body)
        nth = sum(1 for h in self.hits if h.event["id"] == event["id"]) + 1
        self.hits.append(hit)
        hit.outcome = self.rule(event["id"], nth)
        if hit.outcome == "hang":
            await self.release.wait()
            hit.outcome = "hang"  # answered long after the sender gave up: does not count
            return web.Response(status=200)
        return web.Response(status=200 if hit.outcome == "ok" else 500)

    def delivered(self, event_type: str | None = None) -> list[Hit]:
        return [h for h in self.hits if h.outcome == "ok" and event_type in (None, h.event["type"])]

    def of(self, event_id: str) -> list[Hit]:
        return [h for h in self.hits if h.event["id"] == event_id]


def signed(hit: Hit, secret: str = WH_SECRET) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), hit.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(hit.headers["X-Livecart-Signature"], expected)


async def until(check: Callable[[], Awaitable[bool]], timeout: float = WAIT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def outbox(lc: Livecart) -> dict[str, dict[str, Any]]:
    """The stored events by id (a leased event may briefly have two copies: the latest wins)."""
    return {e["id"]: e for e in (await lc.app[SERVICES].store.list_records(webhooks.OUTBOX)).values()}


@pytest.fixture
async def receiver():
    r = await Receiver().start()
    yield r
    await r.close()


def hooked(tmp_path: Path, receiver: Receiver, **overrides: Any):
    return make_config(tmp_path, webhook_url=receiver.url, webhook_secret=WH_SECRET,
                       webhook_retry_base=BASE, **overrides)


async def test_events_are_signed_typed_unique_and_in_order(tmp_path, session, receiver) -> None:
    lc = await Livecart(hooked(tmp_path, receiver), session).start()
    try:
        ids = [await lc.app[SERVICES].webhooks.emit("order.created", {"order": {"id": f"o{i}", "total": 100 * i}})
               for i in range(5)]
        ids.append(await lc.app[SERVICES].webhooks.emit("order.status", {"order": {"id": "o1", "state": "dispatched"}}))
        assert len(set(ids)) == 6 and all(i.startswith("evt_") for i in ids)
        await eventually(lambda: len(receiver.delivered()) == 6, what="six deliveries")
        hits = receiver.delivered()
        assert [h.event["id"] for h in hits] == ids  # one process, healthy receiver: creation order
        for hit in hits:
            assert signed(hit)
            assert not signed(hit, WH_SECRET + "x")
            assert set(hit.event) == {"id", "type", "createdAt", "data"}
            assert hit.headers["X-Livecart-Event"] == hit.event["type"]
            assert hit.headers["Content-Type"] == "application/json"
            assert hit.attempt == 1 and isinstance(hit.event["createdAt"], int)
        assert [h.event["type"] for h in hits] == ["order.created"] * 5 + ["order.status"]
        assert hits[2].event["data"] == {"order": {"id": "o2", "total": 200}}
        await until(lambda: _empty(lc), what="outbox emptied")
    finally:
        await lc.stop()


async def _empty(lc: Livecart) -> bool:
    return not await outbox(lc)


async def test_emit_without_a_url_is_a_no_op(lc: Livecart) -> None:
    assert await lc.app[SERVICES].webhooks.emit("order.created", {"order": {}}) == ""
    assert await lc.app[SERVICES].store.list_records(webhooks.OUTBOX) == {}
    lc.app[SERVICES].webhooks.note_activity("c1", "alice")  # no worker, no error


async def test_failing_receiver_gets_every_event_once_after_500_timeout_and_refusal(
        tmp_path, session, receiver, monkeypatch) -> None:
    monkeypatch.setattr(webhooks, "DELIVERY_TIMEOUT", 1.0)  # a hang; long beside a 500's round trip
    receiver.rule = lambda event_id, nth: "fail" if nth == 1 else "hang"
    lc = await Livecart(hooked(tmp_path, receiver), session).start()
    try:
        ids = [await lc.app[SERVICES].webhooks.emit("order.status", {"n": i}) for i in range(3)]
        # every event has had a 500 and is now hanging: stop listening, the hangs time out
        await eventually(lambda: all(any(h.outcome == "hang" for h in receiver.of(i)) for i in ids),
                         what="a hang for each event")
        await receiver.down()

        async def refused_each() -> bool:
            events = await outbox(lc)
            return all("Connect" in events.get(i, {}).get("lastError", "") for i in ids)
        await until(refused_each, what="a refused attempt for each event")
        # From here on every answer is a success: a loaded machine must not turn a slow "ok" into
        # a timeout and a second delivery (at-least-once would allow it; this test counts them).
        monkeypatch.setattr(webhooks, "DELIVERY_TIMEOUT", WAIT)
        receiver.rule = lambda event_id, nth: "ok"
        await receiver.up()
        await eventually(lambda: {h.event["id"] for h in receiver.delivered()} == set(ids), what="all delivered")
        await until(lambda: _empty(lc), what="outbox emptied")
        assert len(receiver.delivered()) == 3  # and no event twice
        for event_id in ids:
            hits = receiver.of(event_id)
            assert [h.outcome for h in hits][0] == "fail" and hits[1].outcome == "hang"
            assert hits[-1].outcome == "ok" and all(h.outcome == "hang" for h in hits[1:-1])
            assert all(signed(h) for h in hits)
            # attempts the receiver never saw were refused connections
            assert hits[-1].attempt > len(hits)
            assert [h.attempt for h in hits] == sorted(h.attempt for h in hits)
            for before, after in zip(hits, hits[1:]):
                # Spaced by at least the back-off after a 500: the receiver saw the request before the
                # sender saw its answer. (After a hang the sender's give-up is not seen here; how late
                # the request reached us would be a guess at this machine's speed.)
                if after.attempt == before.attempt + 1 and before.outcome == "fail":
                    assert after.at - before.at >= BASE * 2 ** (before.attempt - 1) - 0.005, (before, after)
    finally:
        await lc.stop()


async def test_events_survive_a_crash_and_are_delivered_after_restart(
        tmp_path, session, receiver, monkeypatch) -> None:
    monkeypatch.setattr(webhooks, "DELIVERY_TIMEOUT", 0.3)
    monkeypatch.setattr(webhooks, "LEASE_MARGIN", 0.5)

    async def crash(*_: object) -> None:  # a crash mid-attempt leaves the lease behind
        return None
    monkeypatch.setattr(Outbox, "_give_back", crash)
    receiver.rule = lambda event_id, nth: "hang"
    config = hooked(tmp_path, receiver)
    first = await Livecart(config, session).start()
    ids = [await first.app[SERVICES].webhooks.emit("order.created", {"n": i}) for i in range(4)]
    await eventually(lambda: bool(receiver.of(ids[0])), what="first attempt in flight")
    await receiver.down()
    await first.stop()  # while the first event is mid-attempt and the others never went out

    second = await Livecart(replace(config, port=free_port()), session).start()
    try:
        assert set(await outbox(second)) == set(ids)  # nothing lost
        await asyncio.sleep(0.2)  # the receiver is still down: refusals, back-off
        monkeypatch.setattr(webhooks, "DELIVERY_TIMEOUT", WAIT)  # a slow "ok" is no timeout (see above)
        receiver.rule = lambda event_id, nth: "ok"
        await receiver.up()
        await eventually(lambda: {h.event["id"] for h in receiver.delivered()} == set(ids),
                         what="all delivered after restart")
        await until(lambda: _empty(second), what="outbox emptied")
        delivered = receiver.delivered()
        assert len(delivered) == len({h.event["id"] for h in delivered}) == 4  # exactly once each
        assert all(signed(h) for h in receiver.hits)
        first_event = next(h for h in delivered if h.event["id"] == ids[0])
        assert first_event.attempt >= 2  # the attempt cut by the crash counted
    finally:
        await second.stop()


async def test_two_processes_on_one_redis_store_make_each_attempt_once(
        tmp_path, session, receiver, redis_server) -> None:
    receiver.rule = lambda event_id, nth: "fail" if nth == 1 else "ok"
    shared = {"store": redis_server.url, "bus": redis_server.url}
    a = await Livecart(hooked(tmp_path / "a", receiver, **shared), session).start()
    b = await Livecart(hooked(tmp_path / "b", receiver, **shared), session).start()
    try:
        ids = []
        for i in range(10):
            ids.append(await a.app[SERVICES].webhooks.emit("order.created", {"n": i}))
            ids.append(await b.app[SERVICES].webhooks.emit("order.created", {"n": i}))
        await eventually(lambda: {h.event["id"] for h in receiver.delivered()} == set(ids),
                         what="all delivered")
        await until(lambda: _empty(a), what="outbox emptied")
        for event_id in ids:  # one 500, then one success: no attempt made twice
            assert [(h.attempt, h.outcome) for h in receiver.of(event_id)] == [(1, "fail"), (2, "ok")]
    finally:
        await a.stop()
        await b.stop()


async def test_cart_abandoned_once_per_idle_period_only_with_holds(tmp_path, session, receiver) -> None:
    lc = await Livecart(hooked(tmp_path, receiver, abandoned_after=0.5), session).start()
    admin = lc.token("root", "admin")
    try:
        await lc.product("MUG", maxQty=5)
        assert (await lc.call("PUT", "/api/stock/MUG", admin, json={"onHand": 10}))[0] == 200
        cart = await lc.cart("alice")
        edited = time.monotonic()  # before the edit reaches note_activity: a sound lower bound
        status, line = await lc.call("POST", f"/api/carts/{cart}/lines", lc.token("alice"),
                                     json={"sku": "MUG", "qty": 2})
        assert status == 201, line
        await until(lambda: _held(lc, cart, 2), what="hold")
        empty_cart = await lc.cart("bob")
        lc.app[SERVICES].webhooks.note_activity(empty_cart, "bob")

        await eventually(lambda: len(receiver.delivered("cart.abandoned")) == 1, what="cart.abandoned")
        hit = receiver.delivered("cart.abandoned")[0]
        assert hit.at - edited >= 0.5
        data = hit.event["data"]
        assert data["cartId"] == cart and data["owner"] == "alice"
        assert [(l["sku"], l["qty"]) for l in data["lines"]] == [("MUG", 2)]
        holds = await lc.app[SERVICES].stock.holds_of(cart)
        assert data["holdsUntil"] == min(h.expires_at for h in holds.values()) > time.time() * 1000
        assert signed(hit)
        await asyncio.sleep(1.0)  # twice abandoned_after: still once, and never for the cart without holds
        assert [h.event["data"]["cartId"] for h in receiver.delivered("cart.abandoned")] == [cart]

        # an edit re-arms it: a live (Yjs) edit, by staff, reaches note_activity through the rooms
        staff = await lc.client(cart, lc.token("root", "admin"))
        staff.lines[line["lineId"]]["qty"] = 3
        edited = time.monotonic()
        await until(lambda: _held(lc, cart, 3), what="bigger hold")
        await eventually(lambda: len(receiver.delivered("cart.abandoned")) == 2, what="second cart.abandoned")
        second = receiver.delivered("cart.abandoned")[1]
        assert second.at - edited >= 0.5
        assert [(l["sku"], l["qty"]) for l in second.event["data"]["lines"]] == [("MUG", 3)]
        assert second.event["data"]["owner"] == "alice"  # the cart's owner, not the last editor
        assert second.event["id"] != hit.event["id"]
        await asyncio.sleep(1.0)
        assert len(receiver.delivered("cart.abandoned")) == 2
    finally:
        await lc.stop()


async def test_cart_abandoned_also_when_its_holds_ran_out_while_idle(tmp_path, session, receiver) -> None:
    """With the defaults holds (15 min) run out before a cart counts as abandoned (30 min).

    The hold runs out first by construction, not by a race of two short timers on a busy machine:
    the cart sits idle on a server that would wait an hour until the hold's expiry is in the stored
    cart, then the server restarts with a shorter abandoned_after and finds the idle cart."""
    config = hooked(tmp_path, receiver, abandoned_after=3600, hold_ttl_seconds=0.3)
    first = await Livecart(config, session).start()
    try:
        await first.product("MUG", maxQty=5)
        assert (await first.call("PUT", "/api/stock/MUG", first.token("root", "admin"), json={"onHand": 10}))[0] == 200
        cart = await first.cart("alice")
        status, line = await first.call("POST", f"/api/carts/{cart}/lines", first.token("alice"),
                                        json={"sku": "MUG", "qty": 1})
        assert status == 201

        async def expired_and_recorded() -> bool:
            stored = await first.app[SERVICES].store.load(cart)
            holds = CartDoc(stored.snapshot, stored.updates).to_dict()["holds"]
            return (holds.get(line["lineId"], {}).get("status") == "expired"
                    and cart in await first.app[SERVICES].store.list_records(webhooks.ACTIVITY))
        await until(expired_and_recorded, what="the hold expired in the stored cart, the edit recorded")
    finally:
        await first.stop()
    assert not receiver.delivered("cart.abandoned")
    lc = await Livecart(replace(config, port=free_port(), abandoned_after=1.0), session).start()
    try:
        await eventually(lambda: len(receiver.delivered("cart.abandoned")) == 1, what="cart.abandoned")
        data = receiver.delivered("cart.abandoned")[0].event["data"]
        assert data["lines"] == [{"lineId": line["lineId"], "sku": "MUG", "qty": 1}] and data["holdsUntil"] is None
        assert not await lc.app[SERVICES].stock.holds_of(cart)  # the units went back to stock meanwhile
    finally:
        await lc.stop()


async def _held(lc: Livecart, cart: str, qty: int) -> bool:
    return sum(h.qty for h in (await lc.app[SERVICES].stock.holds_of(cart)).values()) == qty


def test_cli_generates_and_keeps_a_webhook_secret(tmp_path, capsys) -> None:
    options: dict[str, Any] = dict(
        host="127.0.0.1", port=1, data_dir=str(tmp_path), jwt_secret="j" * 40, store="sqlite", bus="memory",
        max_message_bytes=1, max_messages_per_second=1, max_lines=1, max_doc_bytes=1, room_grace=1.0,
        hold_ttl=1.0, kiosk_idle=1.0)
    off = build_config(**options)
    assert off.webhook_url == "" and off.abandoned_after == 1800 and off.webhook_retry_base == 0.5
    on = build_config(**options, webhook_url="https://platform.example/hooks", abandoned_after=60)
    assert on.webhook_secret and on.abandoned_after == 60
    assert (tmp_path / "webhook-secret").read_text().strip() == on.webhook_secret
    assert "webhook-secret" in capsys.readouterr().err
    assert build_config(**options, webhook_url="https://x.example/").webhook_secret == on.webhook_secret
    mine = build_config(**options, webhook_url="https://x.example/", webhook_secret="mine")
    assert mine.webhook_secret == "mine"
    with pytest.raises(click.BadParameter):
        build_config(**options, webhook_url="ftp://nope")


async def test_a_real_sale_reaches_the_platform_and_the_customer_feed(tmp_path, session, receiver) -> None:
    """Checkout, payment and dispatch through the HTTP API: the platform gets order.created and each
    order.status, signed; the customer's /api/me/events (SSE) gets the same status changes."""
    lc = await Livecart(hooked(tmp_path, receiver), session).start()
    try:
        admin, tok = lc.token("root", "admin"), lc.token("sal")
        await lc.product("MUG")
        assert (await lc.call("PUT", "/api/stock/MUG", admin, json={"onHand": 2}))[0] == 200
        seen: list[dict] = []
        subscribed = asyncio.Event()

        async def me_feed() -> None:
            async with session.get(f"{lc.base}/api/me/events?token={tok}") as resp:
                subscribed.set()  # the server subscribes before it answers: no event is missed
                async for raw in resp.content:
                    if raw.startswith(b"data:"):
                        seen.append(orjson.loads(raw[5:]))
        feed = asyncio.ensure_future(me_feed())
        await asyncio.wait_for(subscribed.wait(), WAIT)
        cart = await lc.cart("sal")
        assert (await lc.call("POST", f"/api/carts/{cart}/lines", tok, json={"sku": "MUG", "qty": 1}))[0] == 201
        await until(lambda: _held(lc, cart, 1), what="held")
        status, order = await lc.call("POST", f"/api/carts/{cart}/checkout", tok)
        assert status == 201
        await lc.call("POST", f"/api/orders/{order['orderId']}/payment", admin, json={"status": "paid"})
        await lc.call("POST", f"/api/orders/{order['orderId']}/status", admin, json={"status": "dispatched"})
        await eventually(lambda: len(receiver.delivered("order.status")) == 2, what="both status webhooks")
        created = receiver.delivered("order.created")
        assert len(created) == 1 and created[0].event["data"]["order"]["id"] == order["orderId"]
        states = [h.event["data"]["order"]["state"] for h in receiver.delivered("order.status")]
        assert states == ["confirmed", "dispatched"] and all(signed(h) for h in receiver.delivered())
        await eventually(lambda: [e.get("state") for e in seen if e["type"] == "order.status"]
                         == ["confirmed", "dispatched"], what="the customer's SSE feed")
        feed.cancel()
    finally:
        await lc.stop()
