"""Issue 16, defect 3: numbers beyond what JavaScript and money arithmetic hold are refused at the edge.

A qty of 2^63 made pycrdt panic (a BaseException past the error middleware): no response, and
a half-written line without qty that clients synced. Every number a request or a client
update carries is bounded (≤ Number.MAX_SAFE_INTEGER, money to a sane maximum), refused with
a clear 400 (or 4400), and a refused write leaves the cart exactly as it was.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import aiohttp
import pytest
from pycrdt import Doc, Map

from harness import SECRET
from livecart.crdt.cart import new_line
from livecart.crdt.protocol import update_message
from livecart.crdt.schema import MAX_AMOUNT, MAX_PRICE, MAX_SAFE_INTEGER, MAX_STOCK
from livecart.server import auth
from processes import ServerProcess
from yclient import YClient, eventually

ADMIN = auth.mint(SECRET, "root", "admin")
ALICE = auth.mint(SECRET, "alice", "customer")
HUGE = [2**63, 2**64, -(2**63) - 1, 10**30, MAX_SAFE_INTEGER + 1]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data").start()
    yield proc
    proc.stop()
    log = (tmp_path / f"server-{proc.port}.log").read_text()
    assert "Traceback" not in log and "panicked" not in log, log[-3000:]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


class Api:
    def __init__(self, http: aiohttp.ClientSession, server: ServerProcess) -> None:
        self.http, self.server = http, server

    async def __call__(self, method: str, path: str, token: str = ADMIN, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(method, self.server.base + path, json=body,
                                     headers={"Authorization": f"Bearer {token}"}) as r:
            return r.status, await r.json()

    async def refused(self, method: str, path: str, body: Any, token: str = ADMIN) -> str:
        """The request gets a 400 in the error shape; returns its code."""
        status, got = await self(method, path, token, body)
        assert status == 400, (method, path, body, status, got)
        assert set(got) == {"error"} and got["error"]["code"] and got["error"]["message"], got
        return str(got["error"]["code"])

    async def cart_with_line(self) -> tuple[str, str]:
        status, _ = await self("PUT", "/api/catalog/MUG", body={"name": "Mug", "price": 900, "maxQty": 5})
        assert status == 200
        status, body = await self("POST", "/api/carts", ALICE, {})
        cart_id = body["cartId"]
        status, body = await self("POST", f"/api/carts/{cart_id}/lines", ALICE, {"sku": "MUG", "qty": 2})
        assert status == 201, body
        return cart_id, body["lineId"]

    async def cart(self, cart_id: str) -> dict[str, Any]:
        status, body = await self("GET", f"/api/carts/{cart_id}", ALICE)
        assert status == 200, body
        return body  # type: ignore[no-any-return]


@pytest.fixture
def api(http: aiohttp.ClientSession, server: ServerProcess) -> Api:
    return Api(http, server)


async def live_client(http: aiohttp.ClientSession, server: ServerProcess, cart_id: str) -> YClient:
    client = await YClient(http, server.ws(f"/ws/carts/{cart_id}?token={ALICE}")).connect()
    await client.wait_synced(timeout=30)
    return client


@pytest.mark.parametrize("qty", [*HUGE, 1e308, float(2**64), 2.5, "3", True, None, [1], {"n": 2**64}])
async def test_adding_a_line_with_an_impossible_qty_is_a_400_that_writes_nothing(
        api: Api, http: aiohttp.ClientSession, server: ServerProcess, qty: Any) -> None:
    cart_id, line_id = await api.cart_with_line()
    client = await live_client(http, server, cart_id)
    before = await api.cart(cart_id)
    assert await api.refused("POST", f"/api/carts/{cart_id}/lines", {"sku": "MUG", "qty": qty}, ALICE) == "bad_line"
    assert (await api.cart(cart_id))["lines"] == before["lines"]
    # The cart still takes edits, and the live client sees them, never a half-written line.
    status, body = await api("PATCH", f"/api/carts/{cart_id}/lines/{line_id}", ALICE, {"qty": 3})
    assert status == 200, body
    await eventually(lambda: client.snapshot()["lines"].get(line_id, {}).get("qty") == 3, timeout=30,
                     what="the next edit")
    assert client.snapshot()["lines"] == (await api.cart(cart_id))["lines"]
    await client.close()


@pytest.mark.parametrize("personalisation", [
    {"engraving": [2**64]}, {"engraving": [1.5]}, {"engraving": {"a": 2**63}}, {"engraving": 2**64},
])
async def test_personalisation_carrying_numbers_is_a_400_that_writes_nothing(
        api: Api, personalisation: dict[str, Any]) -> None:
    cart_id, _ = await api.cart_with_line()
    before = await api.cart(cart_id)
    body = {"sku": "MUG", "qty": 1, "personalisation": personalisation}
    assert await api.refused("POST", f"/api/carts/{cart_id}/lines", body, ALICE) == "bad_line"
    assert (await api.cart(cart_id))["lines"] == before["lines"]


@pytest.mark.parametrize("qty", [*HUGE, 1e308, 0, 6, 2.5, "3", None])
async def test_setting_an_impossible_qty_is_a_400_and_the_line_keeps_its_qty(api: Api, qty: Any) -> None:
    cart_id, line_id = await api.cart_with_line()
    assert await api.refused("PATCH", f"/api/carts/{cart_id}/lines/{line_id}", {"qty": qty}, ALICE) == "bad_line"
    lines = (await api.cart(cart_id))["lines"]
    assert set(lines) == {line_id} and lines[line_id]["qty"] == 2


@pytest.mark.parametrize("field,value", [
    ("price", 2**64), ("price", 2**63 - 1), ("price", MAX_PRICE + 1), ("price", 1e20), ("price", -1),
    ("maxQty", 2**64), ("personalisation", {"engraving": {"maxLength": 2**64}}),
    ("personalisation", {"engraving": {"maxItems": 2**64}}), ("personalisation", {"engraving": {"maxLength": "12"}}),
])
async def test_catalog_numbers_out_of_range_are_a_400(api: Api, field: str, value: Any) -> None:
    body = {"name": "Big", "price": 100, field: value}
    assert await api.refused("PUT", "/api/catalog/BIG", body) == "bad_product"
    status, _ = await api("PUT", "/api/catalog/BIG", body={"name": "Big", "price": 100})
    assert status == 200  # the next write works


async def test_the_dearest_cart_is_priced_exactly_in_javascript_numbers(
        api: Api, http: aiohttp.ClientSession, server: ServerProcess) -> None:
    """The most a price may be, at the most units a line may hold: the totals stay exact."""
    status, body = await api("PUT", "/api/catalog/GOLD", body={"name": "Gold", "price": MAX_PRICE, "maxQty": 10_000})
    assert status == 200, body
    status, _ = await api("PUT", "/api/stock/GOLD", body={"onHand": MAX_STOCK})
    assert status == 200
    status, body = await api("POST", "/api/carts", ALICE, {})
    cart_id = body["cartId"]
    status, body = await api("POST", f"/api/carts/{cart_id}/lines", ALICE, {"sku": "GOLD", "qty": 10_000})
    assert status == 201, body
    client = await live_client(http, server, cart_id)
    await eventually(lambda: (client.snapshot()["server"].get("pricing") or {}).get("total") == MAX_PRICE * 10_000,
                     timeout=30, what="the pricing")
    assert (await api.cart(cart_id))["pricing"]["total"] == MAX_PRICE * 10_000
    await client.close()


@pytest.mark.parametrize("rule", [
    {"amountOff": 2**64}, {"amountOff": 2**63 - 1}, {"amountOff": MAX_AMOUNT + 1}, {"percentOff": 2**64},
    {"amountOff": 1.5e3 + 0.5}, {"percentOff": 101},  # a whole 1e3 is the integer 1000 (json_body)
])
async def test_discount_numbers_out_of_range_are_a_400_and_the_cart_keeps_its_offers(
        api: Api, rule: dict[str, Any]) -> None:
    cart_id, _ = await api.cart_with_line()
    assert await api.refused("PUT", "/api/discounts/BIG", rule) == "bad_discount"
    before = await api.cart(cart_id)
    assert await api.refused("POST", f"/api/carts/{cart_id}/discounts", {"code": "BIG", **rule}) == "bad_discount"
    assert (await api.cart(cart_id))["pricing"] == before["pricing"]
    status, body = await api("POST", f"/api/carts/{cart_id}/discounts", body={"code": "MOST", "amountOff": MAX_AMOUNT})
    assert status == 201 and body["pricing"]["total"] == 0, body


@pytest.mark.parametrize("path,body", [
    ("/api/stock/MUG", {"onHand": 2**64}), ("/api/stock/MUG", {"onHand": MAX_STOCK + 1}),
    ("/api/stock/MUG", {"onHand": 1e3 + 0.5}), ("/api/stock/MUG/adjust", {"delta": 2**64, "reason": "x"}),
    ("/api/stock/MUG/adjust", {"delta": -(2**64), "reason": "x"}),
    ("/api/stock/MUG/adjust", {"delta": MAX_STOCK, "reason": "delivery"}),  # onHand 10 + delta > MAX_STOCK
])
async def test_stock_numbers_out_of_range_are_a_400_and_stock_is_unchanged(api: Api, path: str, body: Any) -> None:
    await api("PUT", "/api/catalog/MUG", body={"name": "Mug", "price": 900})
    status, _ = await api("PUT", "/api/stock/MUG", body={"onHand": 10})
    assert status == 200
    await api.refused("PUT" if "adjust" not in path else "POST", path, body)
    status, levels = await api("GET", "/api/stock?skus=MUG")
    assert levels["MUG"]["onHand"] == 10


def line_with(field: str, raw: bytes) -> bytes:
    """A client update adding a line whose `field` is the given Yjs Any encoding (a BigInt, a float64…)."""
    doc = Doc()
    doc.get("lines", type=Map)["l-raw"] = new_line("MUG", 1, "alice", "web", 1)
    update = doc.get_update()
    placeholder = struct.pack(">f", 1.0)  # pycrdt writes the small numbers (qty 1, addedAt 1) as float32
    marker = {"qty": update.index(b"qty") + 3, "addedAt": update.index(b"addedAt") + 7}[field]
    at = update.index(placeholder, marker) - 1
    return update[:at] + raw + update[at + 1 + len(placeholder):]


@pytest.mark.parametrize("field,raw", [
    pytest.param("qty", b"\x7a" + struct.pack(">q", 2**62), id="qty-bigint"),
    pytest.param("qty", b"\x7b" + struct.pack(">d", 1e300), id="qty-1e300"),
    pytest.param("addedAt", b"\x7a" + struct.pack(">q", 2**62), id="addedAt-bigint"),
    pytest.param("addedAt", b"\x7b" + struct.pack(">d", 1e300), id="addedAt-1e300"),
    pytest.param("addedAt", b"\x7b" + struct.pack(">d", float("nan")), id="addedAt-nan"),
    pytest.param("addedAt", b"\x7b" + struct.pack(">d", float("inf")), id="addedAt-inf"),
    pytest.param("addedAt", b"\x7b" + struct.pack(">d", -1.0), id="addedAt-negative"),
])
async def test_a_client_update_with_numbers_javascript_cannot_hold_is_closed_4400(
        api: Api, http: aiohttp.ClientSession, server: ServerProcess, field: str, raw: bytes) -> None:
    cart_id, _ = await api.cart_with_line()
    before = await api.cart(cart_id)
    client = await live_client(http, server, cart_id)
    await client.send_raw(update_message(line_with(field, raw)))
    code, reason = await client.wait_closed(timeout=30)
    assert code == 4400 and field in reason, (code, reason)
    assert (await api.cart(cart_id))["lines"] == before["lines"]
