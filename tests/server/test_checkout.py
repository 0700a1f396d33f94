"""Checkout, payment and the order workflow, live discounts, and the admin and customer feeds."""
from __future__ import annotations

import asyncio

import orjson

from harness import Livecart
from livecart.crdt.cart import new_line
from pycrdt import Text
from yclient import YClient, eventually

INVITE = {"personalisation": {"names": {"kind": "text", "maxLength": 60, "required": True},
                              "guests": {"kind": "list", "maxLength": 60, "maxItems": 5}}}


async def setup(lc: Livecart) -> None:
    admin = lc.token("root", "admin")
    await lc.product("INVITE", price=18900, maxQty=4, **INVITE)
    for sku, n in (("INVITE", 50), ("MUG", 1), ("TEE", 10)):
        assert (await lc.call("PUT", f"/api/stock/{sku}", admin, json={"onHand": n}))[0] == 200


class Feed:
    def __init__(self, lc: Livecart, path: str) -> None:
        self.lc, self.path, self.events = lc, path, []

    async def start(self) -> "Feed":
        self.ws = await self.lc.session.ws_connect(f"ws://{self.lc.config.host}:{self.lc.config.port}{self.path}")
        self.task = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        async for msg in self.ws:
            self.events.append(orjson.loads(msg.data))

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


def held(client: YClient, line: str) -> bool:
    return client.snapshot()["server"]["holds"].get(line, {}).get("status") == "held"


async def test_a_whole_sale(lc: Livecart) -> None:
    await setup(lc)
    admin, tok = lc.token("root", "admin"), lc.token("wendy")
    shop = await Feed(lc, f"/ws/admin?token={admin}").start()
    me = await Feed(lc, f"/ws/me?token={tok}").start()
    cart = await lc.cart("wendy")
    # visit 1: a personalised invitation and the last mug
    visit = await lc.client(cart, tok)
    with visit.doc.transaction():
        visit.lines["inv"] = new_line("INVITE", 2, "wendy", "web", 1, {"names": "Ann & Bo", "guests": ["Cy"]})
        visit.lines["mug"] = new_line("MUG", 1, "wendy", "web", 2)
    await eventually(lambda: held(visit, "inv") and held(visit, "mug"), what="held")
    await eventually(lambda: shop.types().count("cart.line_added") == 2, what="admin told")
    assert {e["sku"] for e in shop.events if e["type"] == "cart.line_added"} == {"INVITE", "MUG"}
    assert (await lc.call("POST", f"/api/carts/{cart}/checkout/step", tok, json={"step": "personalise"}))[0] == 200
    await visit.close()
    # visit 2, another device: the wording is edited live, the step is still there
    again = await lc.client(cart, tok)
    assert again.snapshot()["server"]["checkout"]["step"] == "personalise"
    names = again.lines["inv"]["personalisation"]["names"]
    names.insert(len(names), ", with love")
    assert (await lc.call("POST", f"/api/carts/{cart}/checkout/step", tok, json={"step": "details"}))[0] == 200
    await eventually(lambda: "checkout.step" in shop.types(), what="checkout.step")
    # staff push a discount the shopper sees at once
    status, offered = await lc.call("POST", f"/api/carts/{cart}/discounts", admin, json={"code": "thanks", "percentOff": 10})
    assert status == 201
    subtotal = 2 * 18900 + 1000
    await eventually(lambda: again.snapshot()["server"]["pricing"]["total"] == subtotal - subtotal // 10, what="discount")
    await eventually(lambda: "discount.offered" in me.types(), what="offer on /ws/me")
    status, order = await lc.call("POST", f"/api/carts/{cart}/checkout", tok)
    assert status == 201 and order["state"] == "awaiting_payment" and order["total"] == subtotal - subtotal // 10
    await eventually(lambda: again.snapshot()["server"]["status"] == "checking_out", what="frozen")
    again.lines["mug"]["qty"] = 2  # the cart takes no edits now
    code, reason = await again.wait_closed()
    assert code == 4400 and "checking out" in reason
    status, paid = await lc.call("POST", f"/api/orders/{order['orderId']}/payment", admin,
                                 json={"status": "paid", "reference": "psp-1"})
    assert status == 200 and paid["state"] == "confirmed"
    assert (await lc.call("POST", f"/api/orders/{order['orderId']}/payment", admin,
                          json={"status": "paid", "reference": "psp-1"}))[1] == paid  # idempotent
    _, levels = await lc.call("GET", "/api/stock?skus=MUG,INVITE")
    assert levels["MUG"] == {"onHand": 0, "held": 0, "available": 0}
    assert levels["INVITE"]["onHand"] == 48
    _, profile = await lc.call("GET", "/api/customers/wendy", tok)
    assert [o["id"] for o in profile["recentOrders"]] == [order["orderId"]]
    words = next(l for l in profile["recentOrders"][0]["lines"] if l["sku"] == "INVITE")["personalisation"]
    assert words["names"] == "Ann & Bo, with love"
    status, moved = await lc.call("POST", f"/api/orders/{order['orderId']}/status", admin, json={"status": "dispatched"})
    assert status == 200 and moved["state"] == "dispatched"
    await eventually(lambda: any(e["type"] == "order.status" and e["state"] == "dispatched" for e in me.events),
                     what="customer told")
    assert (await lc.call("POST", f"/api/orders/{order['orderId']}/status", admin, json={"status": "cancelled"}))[0] == 409
    status, _ = await lc.call("GET", f"/api/orders/{order['orderId']}", lc.token("mallory"))
    assert status == 403


async def test_checkout_refuses_unheld_lines_and_missing_personalisation(lc: Livecart) -> None:
    await setup(lc)
    tok = lc.token("xena")
    cart = await lc.cart("xena")
    c = await lc.client(cart, tok)
    with c.doc.transaction():
        c.lines["inv"] = new_line("INVITE", 1, "xena", "web", 1, {"guests": ["A"]})
        c.lines["tee"] = new_line("TEE", 20, "xena", "web", 2)  # more than the shop has
    await eventually(lambda: held(c, "inv") and "tee" in c.snapshot()["server"]["holds"], what="decided")
    status, body = await lc.call("POST", f"/api/carts/{cart}/checkout", tok)
    assert status == 409 and body["error"]["code"] == "not_ready"
    assert "line tee" in body["error"]["message"] and "only 10 of 20 held" in body["error"]["message"]
    assert "'names' is required" in body["error"]["message"]
    c.lines["tee"]["qty"] = 10
    c.lines["inv"]["personalisation"]["names"] = Text("Dee")
    await eventually(lambda: held(c, "tee"), what="held in full")
    assert (await lc.call("POST", f"/api/carts/{cart}/checkout", tok))[0] == 201


async def test_a_client_written_price_never_counts_and_prices_come_from_the_catalog(lc: Livecart) -> None:
    await setup(lc)
    tok = lc.token("yan")
    cart = await lc.cart("yan")
    honest, cheat = await lc.client(cart, tok), await lc.client(cart, tok)
    honest.lines["t"] = new_line("TEE", 2, "yan", "web", 1)
    await eventually(lambda: held(honest, "t"), what="held")
    cheat.server["pricing"] = {"total": 1}
    assert (await cheat.wait_closed())[0] == 4400
    await lc.product("TEE", price=1500)  # the shop changes the price before checkout
    status, order = await lc.call("POST", f"/api/carts/{cart}/checkout", tok)
    assert status == 201 and order["total"] == 3000


async def test_concurrent_checkouts_make_one_order(lc: Livecart) -> None:
    await setup(lc)
    tok = lc.token("zoe")
    cart = await lc.cart("zoe")
    assert (await lc.call("POST", f"/api/carts/{cart}/lines", tok, json={"sku": "TEE", "qty": 1}))[0] == 201
    watcher = await lc.client(cart, tok)  # the hold decided, not a guess that 0.2 s was enough
    await eventually(lambda: [h.get("status") for h in watcher.snapshot()["server"].get("holds", {}).values()]
                     == ["held"], what="held")
    results = await asyncio.gather(*(lc.call("POST", f"/api/carts/{cart}/checkout", tok) for _ in range(6)))
    ids = {body["orderId"] for status, body in results if status in (200, 201)}
    assert len(ids) == 1
    _, orders = await lc.call("GET", "/api/customers/zoe/orders", tok)
    assert len(orders["orders"]) == 1


async def test_failed_payment_reopens_the_cart_with_its_holds_and_cancel_returns_stock(lc: Livecart) -> None:
    await setup(lc)
    admin, tok = lc.token("root", "admin"), lc.token("una")
    cart = await lc.cart("una")
    c = await lc.client(cart, tok)
    c.lines["m"] = new_line("MUG", 1, "una", "web", 1)
    await eventually(lambda: held(c, "m"), what="held")
    _, order = await lc.call("POST", f"/api/carts/{cart}/checkout", tok)
    status, failed = await lc.call("POST", f"/api/orders/{order['orderId']}/payment", admin, json={"status": "failed"})
    assert status == 200 and failed["state"] == "payment_failed"
    await eventually(lambda: c.snapshot()["server"]["status"] == "open", what="reopened")
    assert held(c, "m")
    _, levels = await lc.call("GET", "/api/stock?skus=MUG")
    assert levels["MUG"]["held"] == 1  # still theirs
    _, second = await lc.call("POST", f"/api/carts/{cart}/checkout", tok)
    await lc.call("POST", f"/api/orders/{second['orderId']}/payment", admin, json={"status": "paid"})
    status, cancelled = await lc.call("POST", f"/api/orders/{second['orderId']}/status", admin, json={"status": "cancelled"})
    assert status == 200 and cancelled["state"] == "cancelled"
    _, levels = await lc.call("GET", "/api/stock?skus=MUG")
    assert levels["MUG"] == {"onHand": 1, "held": 0, "available": 1}


async def test_typed_discount_codes_count_only_when_valid(lc: Livecart) -> None:
    await setup(lc)
    admin, tok = lc.token("root", "admin"), lc.token("vic")
    assert (await lc.call("PUT", "/api/discounts/SPRING5", admin, json={"amountOff": 500}))[0] == 200
    cart = await lc.cart("vic")
    c = await lc.client(cart, tok)
    c.lines["t"] = new_line("TEE", 2, "vic", "web", 1)
    await eventually(lambda: c.snapshot()["server"]["pricing"]["total"] == 2000, what="priced")
    from pycrdt import Array
    c.meta["discountCodes"] = Array(["BOGUS", "SPRING5"])
    await eventually(lambda: c.snapshot()["server"]["pricing"]["total"] == 1500, what="valid code applied")
    assert [d["code"] for d in c.snapshot()["server"]["pricing"]["discounts"]] == ["SPRING5"]


async def test_presence_reaches_the_admin_feed_with_focus(lc: Livecart) -> None:
    admin = lc.token("root", "admin")
    shop = await Feed(lc, f"/ws/admin?token={admin}").start()
    cart = await lc.cart("pia")
    c = await lc.client(cart, lc.token("pia"))
    await c.set_presence({"user": {"name": "Pia", "role": "customer", "channel": "app"}, "focus": False})

    def presence() -> list:
        return [e for e in shop.events if e["type"] == "cart.presence" and e["cartId"] == cart]
    await eventually(lambda: presence() and presence()[-1]["present"], what="presence")
    assert presence()[-1]["present"][0] | {"clientId": 0} == {"clientId": 0, "name": "Pia", "role": "customer",
                                                               "channel": "app", "focus": False}
    await c.close()
    await eventually(lambda: presence()[-1]["present"] == [], what="gone")


async def test_feeds_refuse_the_wrong_callers(lc: Livecart, session) -> None:
    for path, code in ((f"/ws/admin?token={lc.token('eve')}", 4403), ("/ws/admin", 4401),
                       (f"/ws/me?token={lc.token('x', 'admin')}", 4403)):
        ws = await session.ws_connect(f"ws://{lc.config.host}:{lc.config.port}{path}")
        await ws.receive()
        assert ws.close_code == code, path


async def test_a_stuck_admin_reader_gets_a_gap_marker_not_a_backlog(lc: Livecart) -> None:
    from livecart.server.services import SERVICES
    from livecart.server.feeds import EVENT_BACKLOG

    feed = lc.app[SERVICES].events
    sub = feed.subscribe(None)
    for i in range(EVENT_BACKLOG + 25):
        feed.deliver({"type": "cart.created", "n": i})
    batch = await sub.next()
    assert batch[0] == {"type": "gap", "dropped": 25}
    assert batch[1]["n"] == 25 and len(batch) == EVENT_BACKLOG + 1
    feed.unsubscribe(sub)


async def test_the_admin_feed_hears_of_lines_added_and_removed_by_any_channel_once(lc: Livecart) -> None:
    await setup(lc)
    admin, tok = lc.token("root", "admin"), lc.token("wendy")
    shop = await Feed(lc, f"/ws/admin?token={admin}").start()
    cart = await lc.cart("wendy")
    phone = await lc.client(cart, tok)
    phone.lines["a"] = new_line("TEE", 1, "wendy", "web", 1)
    await eventually(lambda: held(phone, "a"), what="held")
    phone.lines["a"]["qty"] = 2  # a change, not an added line
    await eventually(lambda: phone.snapshot()["server"]["holds"]["a"]["qty"] == 2, what="raised")
    status, body = await lc.call("POST", f"/api/carts/{cart}/lines", admin, json={"sku": "TEE", "qty": 1})
    assert status == 201, body
    await eventually(lambda: body["lineId"] in phone.lines, what="desk line relayed")
    del phone.lines["a"]
    assert (await lc.call("DELETE", f"/api/carts/{cart}/lines/{body['lineId']}", admin))[0] == 200
    await eventually(lambda: shop.types().count("cart.line_removed") == 2, what="both removals told")
    lines = [(e["type"], e["lineId"]) for e in shop.events if e["type"] in ("cart.line_added", "cart.line_removed")]
    assert sorted(lines) == sorted([("cart.line_added", "a"), ("cart.line_added", body["lineId"]),
                                    ("cart.line_removed", "a"), ("cart.line_removed", body["lineId"])])
    added = {e["lineId"]: e for e in shop.events if e["type"] == "cart.line_added"}
    assert added["a"]["sku"] == "TEE" and added["a"]["qty"] == 1 and added["a"]["channel"] == "web"
