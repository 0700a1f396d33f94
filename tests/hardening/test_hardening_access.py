"""Who may do what: issue 16's access defects (invite codes, orders) and the role × route matrix."""
from __future__ import annotations

import asyncio

import pytest

from harness import Livecart
from yclient import eventually


async def invite(lc: Livecart, cart: str, by: str, role: str = "customer") -> str:
    status, body = await lc.call("POST", f"/api/carts/{cart}/invites", lc.token(by, role))
    assert status == 201, body
    return body["code"]


async def walk_in_cart(lc: Livecart, assistant: str = "wally") -> str:
    status, body = await lc.call("POST", "/api/carts", lc.token(assistant, "assistant"), json={"channel": "store"})
    assert status == 201, body
    return body["cartId"]


# -- defect 11: only an assistant (joins) or a customer claiming a walk-in cart may use a code -------------

@pytest.mark.parametrize("sub,role", [("otto", "operator"), ("root", "admin"), ("k1", "kiosk"),
                                      ("alice", "customer"), ("bob", "customer"), ("anon-x", "customer")])
async def test_a_code_to_a_customers_cart_is_refused_to_all_but_assistants_and_kept(
        lc: Livecart, sub: str, role: str) -> None:
    cart = await lc.cart("alice")
    code = await invite(lc, cart, "alice")
    status, body = await lc.call("POST", f"/api/invites/{code}/accept", lc.token(sub, role))
    assert status == 403 and body["error"]["code"] == "forbidden", body
    # the code was not used up: the assistant it was meant for still joins with it
    amy = lc.token("amy", "assistant")
    assert await lc.call("POST", f"/api/invites/{code}/accept", amy) == (200, {"cartId": cart})
    assert (await lc.call("GET", f"/api/carts/{cart}", amy))[0] == 200


@pytest.mark.parametrize("sub,role", [("otto", "operator"), ("root", "admin"), ("k1", "kiosk")])
async def test_a_walk_in_code_is_refused_to_staff_that_cannot_claim_and_kept(lc: Livecart, sub: str, role: str) -> None:
    walk_in = await walk_in_cart(lc)
    code = await invite(lc, walk_in, "wally", "assistant")
    status, body = await lc.call("POST", f"/api/invites/{code}/accept", lc.token(sub, role))
    assert status == 403 and body["error"]["code"] == "forbidden", body
    # the customer standing at the till still claims it
    status, body = await lc.call("POST", f"/api/invites/{code}/accept", lc.token("carol"))
    assert status == 200 and body["cartId"] != walk_in
    status, cart = await lc.call("GET", f"/api/carts/{body['cartId']}", lc.token("carol"))
    assert status == 200 and cart["owner"] == "carol"


# -- defect 12: an order is its customer's, an operator's who looked them up, an admin's, or staff's on its cart --

async def ordered_cart(lc: Livecart, owner: str, cart: str | None = None) -> tuple[str, str]:
    """A cart of `owner` with one held line, checked out: (cartId, orderId)."""
    admin, tok = lc.token("root", "admin"), lc.token(owner)
    assert (await lc.call("PUT", "/api/stock/TEE", admin, json={"onHand": 1000}))[0] == 200
    cart = cart or await lc.cart(owner)
    status, line = await lc.call("POST", f"/api/carts/{cart}/lines", tok, json={"sku": "TEE", "qty": 1})
    assert status == 201, line

    for _ in range(400):  # the stock authority decides the hold just after the edit: a bounded wait for it
        holds = (await lc.call("GET", f"/api/carts/{cart}", tok))[1]["holds"]
        if holds.get(line["lineId"], {}).get("status") == "held":
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"the line was never held: {holds}")
    status, order = await lc.call("POST", f"/api/carts/{cart}/checkout", tok)
    assert status == 201, order
    return cart, order["orderId"]


async def test_an_assistant_sees_only_orders_of_the_carts_it_helps_with(lc: Livecart) -> None:
    helped = await lc.cart("alice")
    _, other_order = await ordered_cart(lc, "alice")  # another cart of the same customer
    amy = lc.token("amy", "assistant")
    assert (await lc.call("POST", f"/api/invites/{await invite(lc, helped, 'alice')}/accept", amy))[0] == 200
    status, body = await lc.call("GET", f"/api/orders/{other_order}", amy)
    assert status == 403 and body["error"]["code"] == "forbidden", body
    _, helped_order = await ordered_cart(lc, "alice", helped)
    assert (await lc.call("GET", f"/api/orders/{helped_order}", amy))[0] == 200
    # and the others the contract names: the customer, an operator only after a lookup, an admin
    assert (await lc.call("GET", f"/api/orders/{other_order}", lc.token("alice")))[0] == 200
    assert (await lc.call("GET", f"/api/orders/{other_order}", lc.token("bob")))[0] == 403
    otto = lc.token("otto", "operator")
    assert (await lc.call("GET", f"/api/orders/{other_order}", otto))[0] == 403
    assert (await lc.call("GET", "/api/customers/alice", otto))[0] == 200  # the lookup
    assert (await lc.call("GET", f"/api/orders/{other_order}", otto))[0] == 200
    assert (await lc.call("GET", f"/api/orders/{other_order}", lc.token("root", "admin")))[0] == 200
