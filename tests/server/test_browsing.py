"""Browsing presence over real websockets (issue 19 #2): storefronts say which product they view and
whether their tab is visible on /ws/stock; viewers are counted per product; the shop floor hears
who browses what (bounded); bad input closes only the socket that sent it."""
from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from harness import Livecart, make_config
from yclient import eventually


class Storefront:
    """A /ws/stock socket that keeps what it gets, and says what it views."""

    def __init__(self, lc: Livecart, skus: str = "MUG,TEE", token: str | None = None) -> None:
        self.lc, self.skus, self.token = lc, skus, token
        self.messages: list[dict[str, Any]] = []

    async def start(self) -> "Storefront":
        query = f"skus={self.skus}" + (f"&token={self.token}" if self.token else "")
        self.ws = await self.lc.session.ws_connect(f"ws://{self.lc.config.host}:{self.lc.config.port}/ws/stock?{query}")
        self.task = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        self.reason = ""
        while True:
            msg = await self.ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.ERROR):
                self.reason = str(msg.extra or "")
                return
            self.messages.append(orjson.loads(msg.data))

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps(message).decode())

    def viewers(self, sku: str) -> int | None:
        values = [m["viewers"] for m in self.messages if m.get("sku") == sku and "viewers" in m]
        return values[-1] if values else None

    async def closed(self) -> tuple[int | None, str]:
        await asyncio.wait_for(self.task, 30)
        return self.ws.close_code, self.reason

    async def close(self) -> None:
        await self.ws.close()
        await self.task


class ShopFloor:
    """An admin's /ws/admin socket, keeping the browse.* events."""

    def __init__(self, lc: Livecart) -> None:
        self.lc = lc
        self.events: list[dict[str, Any]] = []

    async def start(self) -> "ShopFloor":
        token = self.lc.token("root", "admin")
        self.ws = await self.lc.session.ws_connect(f"ws://{self.lc.config.host}:{self.lc.config.port}/ws/admin?token={token}")
        self.task = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        async for msg in self.ws:
            event = orjson.loads(msg.data)
            if str(event.get("type", "")).startswith("browse."):
                self.events.append(event)

    def saw(self, type_: str, **fields: Any) -> bool:
        return any(e["type"] == type_ and all(e.get(k) == v for k, v in fields.items()) for e in self.events)

    async def close(self) -> None:
        await self.ws.close()
        await self.task


async def test_the_shop_floor_sees_who_views_which_product_and_when_they_go_away(lc: Livecart) -> None:
    floor = await ShopFloor(lc).start()
    await lc.cart("alice")  # alice has a cart; the anonymous browser has none
    alice = await Storefront(lc, token=lc.token("alice")).start()
    guest = await Storefront(lc).start()
    await alice.send({"type": "view", "sku": "MUG"})
    await guest.send({"type": "view", "sku": "TEE"})
    await eventually(lambda: floor.saw("browse.view", who="alice", sku="MUG")
                     and floor.saw("browse.view", who="anonymous", sku="TEE"), what="both views")
    await eventually(lambda: floor.saw("browse.view", who="alice", sku="MUG", hasCart=True), what="alice has a cart")
    await eventually(lambda: alice.viewers("MUG") == 1 and alice.viewers("TEE") == 1, what="one viewer each")
    await alice.send({"type": "visibility", "state": "hidden"})
    await eventually(lambda: floor.saw("browse.away", who="alice"), what="alice away")
    await eventually(lambda: guest.viewers("MUG") == 0, what="a hidden tab views nothing")
    await alice.send({"type": "visibility", "state": "visible"})
    await eventually(lambda: floor.saw("browse.back", who="alice") and guest.viewers("MUG") == 1, what="alice back")
    await guest.close()
    await eventually(lambda: floor.saw("browse.left", who="anonymous"), what="the guest left")
    await eventually(lambda: alice.viewers("TEE") == 0, what="nobody on TEE")
    await eventually(lambda: any(e["type"] == "browse.summary" and e["browsing"] == 1 for e in floor.events),
                     what="a summary with alice alone")
    await alice.close()
    await floor.close()


async def test_a_view_of_an_unknown_sku_is_answered_and_the_feed_goes_on(lc: Livecart) -> None:
    shopper = await Storefront(lc).start()
    await shopper.send({"type": "view", "sku": "NO-SUCH-THING"})
    await eventually(lambda: any(m.get("type") == "error" and m.get("code") == "unknown_sku" for m in shopper.messages),
                     what="an unknown_sku error")
    await shopper.send({"type": "view", "sku": "MUG"})
    await eventually(lambda: shopper.viewers("MUG") == 1, what="a good view still counts")
    await shopper.close()


async def test_bad_messages_close_only_their_own_socket(lc: Livecart) -> None:
    bystander = await Storefront(lc).start()
    await bystander.send({"type": "view", "sku": "MUG"})
    for bad, code, words in [("not json", 4400, "not JSON"), ('{"type": "shout"}', 4400, "unknown message"),
                             ('{"type": "view", "sku": 7}', 4400, "sku"),
                             ('{"type": "visibility", "state": "gone"}', 4400, "visibility"),
                             ('{"type": "view", "sku": "' + "M" * 5000 + '"}', 4413, "at most")]:
        shopper = await Storefront(lc).start()
        await shopper.ws.send_str(bad)
        got, reason = await shopper.closed()
        assert got == code and words in reason, (bad[:40], got, reason)
    await eventually(lambda: bystander.viewers("MUG") == 1, what="the bystander is counted still")
    assert not bystander.ws.closed


async def test_10000_view_messages_a_second_from_one_socket_close_it_with_4429_and_disturb_no_one(lc: Livecart) -> None:
    floor = await ShopFloor(lc).start()
    calm = await Storefront(lc, token=lc.token("calm")).start()
    flood = await Storefront(lc, token=lc.token("flood")).start()
    try:
        for i in range(10_000):
            await flood.send({"type": "view", "sku": "MUG" if i % 2 else "TEE"})
    except (ConnectionError, RuntimeError, aiohttp.ClientError):
        pass  # the server closed it mid-flood
    code, reason = await flood.closed()
    assert code == 4429 and "per second" in reason, (code, reason)
    await calm.send({"type": "view", "sku": "TEE"})
    await eventually(lambda: floor.saw("browse.view", who="calm", sku="TEE"), what="the calm shopper is seen")
    await eventually(lambda: calm.viewers("TEE") == 1 and calm.viewers("MUG") == 0, what="the flood counts for nothing")
    status, _ = await lc.call("PUT", "/api/stock/MUG", lc.token("root", "admin"), json={"onHand": 77})
    assert status == 200
    await eventually(lambda: any(m.get("available") == 77 for m in calm.messages), what="stock still live")
    await calm.close()
    await floor.close()


async def test_the_summary_stays_bounded_with_many_browsers(lc: Livecart) -> None:
    floor = await ShopFloor(lc).start()
    shoppers = [await Storefront(lc, skus="MUG").start() for _ in range(40)]
    for i, s in enumerate(shoppers):
        await s.send({"type": "view", "sku": "MUG" if i % 2 else "TEE"})
    await eventually(lambda: any(e["type"] == "browse.summary" and e["browsing"] == 40 for e in floor.events),
                     what="a summary of all 40")
    summary = next(e for e in reversed(floor.events) if e["type"] == "browse.summary" and e["browsing"] == 40)
    assert len(summary["recent"]) <= 12 and {p["sku"]: p["viewers"] for p in summary["products"]} == {"MUG": 20, "TEE": 20}
    for s in shoppers:
        await s.close()
    await floor.close()


async def test_a_bad_token_on_the_stock_feed_closes_4401(tmp_path, session) -> None:
    lc = await Livecart(make_config(tmp_path), session).start()
    try:
        shopper = await Storefront(lc, token="nonsense").start()
        code, _ = await shopper.closed()
        assert code == 4401
    finally:
        await lc.stop()
