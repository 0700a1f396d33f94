"""/ws/orders: staff serving a customer follow that customer's orders live (and only theirs)."""
from __future__ import annotations

from harness import Livecart
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
