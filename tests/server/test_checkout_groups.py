"""What may be bought together: checkout groups, `server.conflicts` live over real websockets, checkout
refused with 409 not_combinable, and splitting lines (with their holds) into a new cart of the same owner."""
from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest

from harness import Livecart, make_config
from livecart.crdt.cart import new_line
from yclient import YClient, eventually


def conflicts(client: YClient) -> list[dict[str, Any]]:
    return client.snapshot()["server"].get("conflicts") or []


def held(client: YClient, *lines: str) -> bool:
    holds = client.snapshot()["server"]["holds"]
    return all(holds.get(line, {}).get("status") == "held" for line in lines)


async def shop(lc: Livecart) -> str:
    """Wine (group alcohol, which shares a checkout with nothing else) and gift cards; stock of each."""
    admin = lc.token("root", "admin")
    await lc.product("WINE", price=1500, checkoutGroup="alcohol")
    await lc.product("GIFT", price=5000, checkoutGroup="vouchers")
    for sku, n in (("WINE", 10), ("GIFT", 10), ("MUG", 10), ("TEE", 10)):
        assert (await lc.call("PUT", f"/api/stock/{sku}", admin, json={"onHand": n}))[0] == 200
    status, body = await lc.call("PUT", "/api/checkout-groups/alcohol", admin, json={"combinesWith": []})
    assert status == 200 and body == {"group": "alcohol", "combinesWith": [], "conflictsWith": []}, body
    return admin


async def levels(lc: Livecart, skus: str = "WINE,GIFT,MUG,TEE") -> dict[str, Any]:
    status, body = await lc.call("GET", f"/api/stock?skus={skus}")
    assert status == 200
    return body


async def test_conflicts_appear_and_clear_live_and_checkout_refuses(lc: Livecart) -> None:
    await shop(lc)
    tok = lc.token("alice")
    cart = await lc.cart("alice")
    shopper, other = await lc.client(cart, tok), await lc.client(cart, tok)  # two tabs of the same cart
    with shopper.doc.transaction():
        shopper.lines["mug"] = new_line("MUG", 1, "alice", "web", 1)
        shopper.lines["gift"] = new_line("GIFT", 1, "alice", "web", 2)
    await eventually(lambda: held(other, "mug", "gift"), what="held")
    assert conflicts(other) == []  # general and vouchers combine
    shopper.lines["wine"] = new_line("WINE", 2, "alice", "web", 3)
    await eventually(lambda: len(conflicts(other)) == 2, what="conflicts appear in the other tab")
    assert [c["groups"] for c in conflicts(other)] == [["alcohol", "general"], ["alcohol", "vouchers"]]
    assert conflicts(other)[0]["lineIds"] == ["mug", "wine"]
    assert "Wine" in conflicts(other)[0]["message"] and "separately" in conflicts(other)[0]["message"]
    await eventually(lambda: held(other, "wine"), what="wine held")
    status, body = await lc.call("POST", f"/api/carts/{cart}/checkout", tok)
    assert status == 409 and body["error"]["code"] == "not_combinable", body
    assert (await lc.call("GET", f"/api/carts/{cart}", tok))[1]["conflicts"] == conflicts(other)
    # the rule changes: the carts that are open say so at once
    admin = lc.token("root", "admin")
    status, _ = await lc.call("PUT", "/api/checkout-groups/alcohol", admin, json={"combinesWith": ["vouchers"]})
    assert status == 200
    await eventually(lambda: [c["groups"] for c in conflicts(other)] == [["alcohol", "general"]], what="rule eased")
    del shopper.lines["mug"]
    await eventually(lambda: conflicts(other) == [], what="conflicts cleared")
    status, body = await lc.call("POST", f"/api/carts/{cart}/checkout", tok)
    assert status == 201, body


async def test_a_group_with_no_rule_combines_and_a_conflict_is_symmetric(lc: Livecart) -> None:
    admin = await shop(lc)
    status, body = await lc.call("PUT", "/api/checkout-groups/alcohol", admin, json={})
    assert status == 200 and body == {"group": "alcohol", "conflictsWith": []}
    status, _ = await lc.call("PUT", "/api/checkout-groups/vouchers", admin, json={"conflictsWith": ["general"]})
    assert status == 200
    status, body = await lc.call("GET", "/api/checkout-groups", admin)
    assert body["groups"] == {"alcohol": {"conflictsWith": []}, "vouchers": {"conflictsWith": ["general"]}}
    cart = await lc.cart("alice")
    client = await lc.client(cart, lc.token("alice"))
    with client.doc.transaction():
        client.lines["wine"] = new_line("WINE", 1, "alice", "web", 1)
        client.lines["mug"] = new_line("MUG", 1, "alice", "web", 2)
    await eventually(lambda: held(client, "wine", "mug"), what="held")
    assert conflicts(client) == []
    client.lines["gift"] = new_line("GIFT", 1, "alice", "web", 3)
    await eventually(lambda: [c["groups"] for c in conflicts(client)] == [["general", "vouchers"]],
                     what="general conflicts with vouchers though only vouchers said so")


async def test_bad_group_rules_are_refused(lc: Livecart) -> None:
    admin = lc.token("root", "admin")
    for group, body, code in (
            ("alcohol", {"conflictsWith": ["alcohol"]}, "bad_group"),  # a group always combines with itself
            ("alcohol", {"combinesWith": ["x"], "conflictsWith": ["x"]}, "bad_group"),
            ("alcohol", {"combinesWith": "general"}, "bad_group"),
            ("alcohol", {"combinesWith": ["No Spaces"]}, "bad_group"),
            ("alcohol", {"mayNot": []}, "bad_group"),
            ("Bad Name", {}, "bad_group")):
        status, answer = await lc.call("PUT", f"/api/checkout-groups/{group}", admin, json=body)
        assert status == 400 and answer["error"]["code"] == code, (group, body, answer)
    status, answer = await lc.call("PUT", "/api/checkout-groups/alcohol", lc.token("alice"), json={})
    assert status == 403
    assert (await lc.call("GET", "/api/checkout-groups", admin))[1] == {"groups": {}}  # nothing was written
    status, answer = await lc.call("PUT", "/api/catalog/X", admin, json={"name": "X", "price": 1, "checkoutGroup": 7})
    assert status == 400 and answer["error"]["code"] == "bad_product"


async def split_keeps_stock(lc: Livecart) -> None:
    """A split moves the chosen lines with their holds: `available` never moves, for any SKU."""
    await shop(lc)
    tok = lc.token("alice")
    cart = await lc.cart("alice")
    client = await lc.client(cart, tok)
    with client.doc.transaction():
        client.lines["mug"] = new_line("MUG", 2, "alice", "web", 1)
        client.lines["wine"] = new_line("WINE", 3, "alice", "web", 2)
        client.lines["gift"] = new_line("GIFT", 1, "alice", "web", 3)
    await eventually(lambda: held(client, "mug", "wine", "gift") and len(conflicts(client)) == 2, what="held")
    before = await levels(lc)
    assert before["WINE"]["available"] == 7 and before["MUG"]["available"] == 8
    status, body = await lc.call("POST", f"/api/carts/{cart}/split", tok, json={"lineIds": ["wine"]})
    assert status == 201, body
    new = body["cartId"]
    assert await levels(lc) == before
    await eventually(lambda: "wine" not in client.snapshot()["lines"] and conflicts(client) == [],
                     what="the source lost the line and its conflicts")
    assert "wine" not in client.snapshot()["server"]["holds"]
    moved = await lc.client(new, tok)
    await eventually(lambda: held(moved, "wine"), what="the new cart shows the moved hold")
    assert moved.snapshot()["lines"]["wine"]["qty"] == 3 and conflicts(moved) == []
    assert await levels(lc) == before
    status, carts = await lc.call("GET", "/api/carts", tok)
    assert {c["id"] for c in carts["carts"]} >= {cart, new}
    # both check out now, one after the other
    assert (await lc.call("POST", f"/api/carts/{cart}/checkout", tok))[0] == 201
    assert (await lc.call("POST", f"/api/carts/{new}/checkout", tok))[0] == 201


async def test_a_split_keeps_available_unchanged(lc: Livecart) -> None:
    await split_keeps_stock(lc)


@pytest.fixture
async def lc_redis(tmp_path: Path, redis_server: Any) -> AsyncIterator[Livecart]:
    async with aiohttp.ClientSession() as session:
        config = make_config(tmp_path, store=redis_server.url, bus=redis_server.url)
        server = await Livecart(config, session).start()
        await server.product("MUG", maxQty=5)
        await server.product("TEE")
        yield server
        await server.stop()


async def test_a_split_keeps_available_unchanged_on_redis(lc_redis: Livecart) -> None:
    await split_keeps_stock(lc_redis)


async def test_bad_splits_are_refused_and_change_nothing(lc: Livecart) -> None:
    await shop(lc)
    tok, bob = lc.token("alice"), lc.token("bob")
    cart, bobs = await lc.cart("alice"), await lc.cart("bob")
    for line, sku in (("a", "MUG"), ("b", "TEE")):
        assert (await lc.call("POST", f"/api/carts/{cart}/lines", tok, json={"sku": sku, "qty": 1}))[0] == 201
    status, body = await lc.call("POST", f"/api/carts/{bobs}/lines", bob, json={"sku": "MUG", "qty": 1})
    bob_line = body["lineId"]
    lines = list((await lc.call("GET", f"/api/carts/{cart}", tok))[1]["lines"])
    for body, code in (({"lineIds": lines}, "split_all"), ({"lineIds": [bob_line]}, "unknown_lines"),
                       ({"lineIds": []}, "bad_lines"), ({"lineIds": "x"}, "bad_lines"), ({}, "bad_lines"),
                       ({"lineIds": [lines[0], 3]}, "bad_lines")):
        status, answer = await lc.call("POST", f"/api/carts/{cart}/split", tok, json=body)
        assert status == 400 and answer["error"]["code"] == code, (body, answer)
    status, _ = await lc.call("POST", f"/api/carts/{bobs}/split", tok, json={"lineIds": [bob_line]})
    assert status == 403  # another shopper's cart
    assert len((await lc.call("GET", "/api/carts", tok))[1]["carts"]) == 1  # no cart was made
    assert list((await lc.call("GET", f"/api/carts/{cart}", tok))[1]["lines"]) == lines
