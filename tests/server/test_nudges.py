"""Nudge rules (`/api/rules`): a cart idle, a checkout left, a shopper away for N minutes → the shop floor is
told (`rule.fired`) or a discount is offered into the cart (the staff's path: `server.offers`, pricing).
Each rule fires at most once per cart: across a restart, and with two processes on one Redis. Rules use
minutes short enough for a test (a fraction of a minute); every wait is for a state, bounded generously."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from harness import Livecart, make_config
from livecart.crdt.cart import new_line
from livecart.server.services import SERVICES
from yclient import eventually

QUICK = 0.003  # minutes (0.18 s)


class Feed:
    """/ws/admin of one process: what the shop floor hears."""

    def __init__(self, lc: Livecart) -> None:
        self.lc, self.events = lc, []

    async def start(self) -> "Feed":
        url = f"ws://{self.lc.config.host}:{self.lc.config.port}/ws/admin?token={self.lc.token('root', 'admin')}"
        self.ws = await self.lc.session.ws_connect(url)
        self.task = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        async for msg in self.ws:
            self.events.append(orjson.loads(msg.data))

    def fired(self, rule: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "rule.fired" and (rule is None or e["rule"] == rule)]

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self.task, return_exceptions=True)


async def rule(lc: Livecart, rule_id: str, event: str, minutes: float, **then: Any) -> None:
    body = {"when": {"event": event, "minutes": minutes}, "then": then or {"action": "notify"}}
    status, answer = await lc.call("PUT", f"/api/rules/{rule_id}", lc.token("root", "admin"), json=body)
    assert status == 200, answer


async def add_line(lc: Livecart, cart: str, sku: str = "MUG") -> str:
    status, body = await lc.call("POST", f"/api/carts/{cart}/lines", lc.token("alice"), json={"sku": sku, "qty": 1})
    assert status == 201, body
    return body["lineId"]


async def stock(lc: Livecart) -> None:
    for sku in ("MUG", "TEE"):
        await lc.call("PUT", f"/api/stock/{sku}", lc.token("root", "admin"), json={"onHand": 50})


async def test_rules_are_defined_listed_and_deleted_and_bad_ones_refused(lc: Livecart) -> None:
    admin = lc.token("root", "admin")
    body = {"when": {"event": "cart_idle", "minutes": 30}, "then": {"action": "offer", "code": "come-back", "percentOff": 10}}
    status, answer = await lc.call("PUT", "/api/rules/idle", admin, json=body)
    assert status == 200 and answer == {"id": "idle", "when": {"event": "cart_idle", "minutes": 30},
                                        "then": {"action": "offer", "code": "COME-BACK", "percentOff": 10}}
    assert (await lc.call("GET", "/api/rules", admin))[1] == {"rules": [answer]}
    for bad, code in (({"when": {"event": "bored", "minutes": 5}, "then": {"action": "notify"}}, "unknown_event"),
                      ({"when": {"event": "away", "minutes": 0}, "then": {"action": "notify"}}, "bad_rule"),
                      ({"when": {"event": "away", "minutes": True}, "then": {"action": "notify"}}, "bad_rule"),
                      ({"when": {"event": "away", "minutes": 5}, "then": {"action": "shout"}}, "bad_rule"),
                      ({"when": {"event": "away", "minutes": 5}, "then": {"action": "offer"}}, "bad_discount"),
                      ({"when": {"event": "away", "minutes": 5}}, "bad_rule"), ([], "bad_json")):
        status, answer = await lc.call("PUT", "/api/rules/bad", admin, json=bad)
        assert status == 400 and answer["error"]["code"] == code, (bad, answer)
    assert (await lc.call("PUT", "/api/rules/x", lc.token("alice"), json=body))[0] == 403
    assert [r["id"] for r in (await lc.call("GET", "/api/rules", admin))[1]["rules"]] == ["idle"]
    assert (await lc.call("DELETE", "/api/rules/idle", admin))[1] == {"id": "idle", "deleted": True}
    assert (await lc.call("DELETE", "/api/rules/idle", admin))[0] == 404
    assert (await lc.call("GET", "/api/rules", admin))[1] == {"rules": []}


async def test_cart_idle_notifies_and_checkout_idle_offers_into_the_cart_once(lc: Livecart) -> None:
    await stock(lc)
    feed = await Feed(lc).start()
    cart = await lc.cart("alice")
    client = await lc.client(cart, lc.token("alice"))
    await rule(lc, "idle", "cart_idle", QUICK)
    await rule(lc, "rescue", "checkout_idle", QUICK * 2, action="offer", code="rescue", percentOff=10)
    client.lines["mug"] = new_line("MUG", 1, "alice", "web", 1)
    await eventually(lambda: len(feed.fired("idle")) == 1, what="cart_idle fired")
    assert feed.fired("idle")[0]["cartId"] == cart and feed.fired("idle")[0]["action"] == "notify"
    assert not feed.fired("rescue")  # not in checkout
    assert (await lc.call("POST", f"/api/carts/{cart}/checkout/step", lc.token("alice"), json={"step": "details"}))[0] == 200
    await eventually(lambda: len(feed.fired("rescue")) == 1, what="checkout_idle fired")
    await eventually(lambda: "RESCUE" in (client.snapshot()["server"].get("offers") or {}), what="offer in the cart")
    await eventually(lambda: client.snapshot()["server"]["pricing"]["total"] == 900, what="priced with the offer")
    # more edits, more idleness: nothing fires twice (a later rule shows the clocks went on)
    client.lines["mug"]["qty"] = 2
    await rule(lc, "later", "cart_idle", QUICK * 3)
    await eventually(lambda: len(feed.fired("later")) == 1, what="the later rule fired")
    assert len(feed.fired("idle")) == 1 and len(feed.fired("rescue")) == 1
    await feed.close()


async def test_away_offers_into_the_shoppers_newest_open_cart(lc: Livecart) -> None:
    await stock(lc)
    feed = await Feed(lc).start()
    cart = await lc.cart("alice")
    await add_line(lc, cart)
    await rule(lc, "away", "away", QUICK, action="offer", amountOff=200)
    url = f"ws://{lc.config.host}:{lc.config.port}/ws/stock?skus=MUG&token={lc.token('alice')}"
    async with lc.session.ws_connect(url) as tab:
        await tab.send_str(orjson.dumps({"type": "view", "sku": "MUG"}).decode())
        await tab.send_str(orjson.dumps({"type": "visibility", "state": "hidden"}).decode())
        await eventually(lambda: len(feed.fired("away")) == 1, what="away fired")
    assert feed.fired("away")[0]["cartId"] == cart
    status, body = await lc.call("GET", f"/api/carts/{cart}", lc.token("alice"))
    assert body["pricing"]["discounts"], body["pricing"]
    await feed.close()


async def test_a_rule_fires_once_across_a_restart(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    config = make_config(tmp_path)
    lc = await Livecart(config, session).start()
    await lc.product("MUG")
    await stock(lc)
    feed = await Feed(lc).start()
    cart = await lc.cart("alice")
    await rule(lc, "idle", "cart_idle", QUICK)
    await add_line(lc, cart)
    await eventually(lambda: len(feed.fired("idle")) == 1, what="fired before the restart")
    await feed.close()
    await lc.stop()
    lc = await Livecart(config, session).start()  # the same data directory
    try:
        feed = await Feed(lc).start()
        client = await lc.client(cart, lc.token("alice"))
        client.lines["more"] = new_line("MUG", 1, "alice", "web", 2)  # active, then idle again
        await rule(lc, "witness", "cart_idle", QUICK * 3)  # longer: by the time it fires, "idle" was due
        await eventually(lambda: len(feed.fired("witness")) == 1, what="the witness fired after the restart")
        assert feed.fired("idle") == []
        await feed.close()
    finally:
        await lc.stop()


async def test_a_rule_fires_once_with_two_processes_on_redis(tmp_path: Path, redis_server: Any) -> None:
    async with aiohttp.ClientSession() as session:
        one = await Livecart(make_config(tmp_path / "1", store=redis_server.url, bus=redis_server.url), session).start()
        two = await Livecart(make_config(tmp_path / "2", store=redis_server.url, bus=redis_server.url), session).start()
        try:
            await one.product("MUG")
            await stock(one)
            feed = await Feed(one).start()  # hears the shop floor of both processes (the bus)
            cart = await one.cart("alice")
            first, second = await one.client(cart, one.token("alice")), await two.client(cart, two.token("alice"))
            await rule(one, "idle", "cart_idle", QUICK, action="offer", code="nudge", percentOff=5)
            await eventually(lambda: "idle" in two.app[SERVICES].nudges.rules, what="rule known in both")
            first.lines["a"] = new_line("MUG", 1, "alice", "web", 1)
            await eventually(lambda: "a" in second.snapshot()["lines"], what="both processes have the edit")
            await eventually(lambda: len(feed.fired("idle")) == 1, what="fired")
            await rule(two, "witness", "cart_idle", QUICK * 3)
            await eventually(lambda: len(feed.fired("witness")) == 1, what="the witness fired")
            assert len(feed.fired("idle")) == 1
            await eventually(lambda: list(second.snapshot()["server"].get("offers") or {}) == ["NUDGE"], what="offer")
            await feed.close()
        finally:
            await two.stop()
            await one.stop()
