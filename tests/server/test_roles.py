"""Every route and the cart websocket, for every role (and bad tokens): exactly what DESIGN.md's table allows."""
from __future__ import annotations

import time

import jwt
import pytest

from harness import Livecart
from yclient import YClient

CALLERS = ["none", "expired", "other-key", "owner", "other-customer", "assistant-invited", "assistant",
           "operator-looked-up", "operator", "kiosk-signed-in", "kiosk", "admin"]


async def callers(lc: Livecart) -> tuple[dict[str, str | None], str]:
    """Tokens for every kind of caller, and a cart of alice's that some of them were given."""
    tok = lc.token
    cart = await lc.cart("alice")
    status, invite = await lc.call("POST", f"/api/carts/{cart}/invites", tok("alice"))
    assert status == 201
    assert (await lc.call("POST", f"/api/invites/{invite['code']}/accept", tok("amy", "assistant")))[0] == 200
    assert (await lc.call("GET", "/api/customers/alice", tok("otto", "operator")))[0] == 200
    status, code = await lc.call("POST", "/api/kiosk-codes", tok("alice"))
    status, session = await lc.call("POST", "/api/kiosks/k1/sessions", tok("k1", "kiosk"), json={"code": code["code"]})
    assert status == 201 and session["cartId"] == cart, session  # alice's active cart
    return {
        "none": None,
        "expired": tok("alice", ttl_seconds=-5),
        "other-key": jwt.encode({"sub": "alice", "role": "customer", "exp": time.time() + 60}, "z" * 40, "HS256"),
        "owner": tok("alice"), "other-customer": tok("bob"),
        "assistant-invited": tok("amy", "assistant"), "assistant": tok("zed", "assistant"),
        "operator-looked-up": tok("otto", "operator"), "operator": tok("olga", "operator"),
        "kiosk-signed-in": tok("k1", "kiosk"), "kiosk": tok("k2", "kiosk"),
        "admin": tok("root", "admin"),
    }, cart


OPENERS = {"owner", "assistant-invited", "operator-looked-up", "kiosk-signed-in", "admin"}
BAD = {"none": 401, "expired": 401, "other-key": 401}


def expected(allowed: set[str], caller: str, ok: int = 200) -> int:
    return BAD.get(caller, ok if caller in allowed else 403)


async def test_cart_websocket_for_every_caller(lc: Livecart, session) -> None:
    tokens, cart = await callers(lc)
    for caller, token in tokens.items():
        client = await YClient(session, lc.ws_url(cart, token)).connect()
        if caller in OPENERS:
            await client.wait_synced()
            await client.close()
        else:
            code, _ = await client.wait_closed()
            assert code == {401: 4401, 403: 4403}[expected(OPENERS, caller)], caller


async def test_cart_routes_for_every_caller(lc: Livecart) -> None:
    tokens, cart = await callers(lc)
    await lc.product("MUG")
    for caller, token in tokens.items():
        want = expected(OPENERS, caller)
        assert (await lc.call("GET", f"/api/carts/{cart}", token))[0] == want, caller
        status, body = await lc.call("POST", f"/api/carts/{cart}/lines", token, json={"sku": "MUG", "qty": 1})
        assert status == expected(OPENERS, caller, 201), (caller, body)
        if status == 201:
            line = body["lineId"]
            assert (await lc.call("PATCH", f"/api/carts/{cart}/lines/{line}", token, json={"qty": 2}))[0] == 200
            assert (await lc.call("DELETE", f"/api/carts/{cart}/lines/{line}", token))[0] == 200
        assert (await lc.call("POST", f"/api/carts/{cart}/invites", token))[0] == expected(OPENERS, caller, 201), caller


async def test_customer_routes_for_every_caller(lc: Livecart) -> None:
    tokens, _ = await callers(lc)
    see = {"owner", "assistant-invited", "operator-looked-up", "operator", "admin"}
    change = {"owner", "admin"}
    for caller, token in tokens.items():
        assert (await lc.call("GET", "/api/customers/alice", token))[0] == expected(see, caller), caller
        assert (await lc.call("GET", "/api/customers/alice/orders", token))[0] == expected(see, caller), caller
        assert (await lc.call("PUT", "/api/customers/alice/favourites/MUG", token))[0] == expected(change, caller), caller
        assert (await lc.call("DELETE", "/api/customers/alice/favourites/MUG", token))[0] == expected(change, caller)


async def test_admin_routes_for_every_caller(lc: Livecart) -> None:
    tokens, _ = await callers(lc)
    for caller, token in tokens.items():
        want = expected({"admin"}, caller)
        assert (await lc.call("PUT", "/api/catalog/NEW", token, json={"name": "New", "price": 1}))[0] == want, caller
        assert (await lc.call("PUT", "/api/stock/NEW", token, json={"onHand": 3}))[0] == want, caller
        assert (await lc.call("POST", "/api/stock/NEW/adjust", token, json={"delta": 1, "reason": "delivery"}))[0] == want


async def test_creating_carts_by_role(lc: Livecart) -> None:
    tokens, _ = await callers(lc)
    status, body = await lc.call("POST", "/api/carts", tokens["owner"], json={"channel": "app"})
    assert status == 201 and body["owner"] == "alice"
    status, body = await lc.call("POST", "/api/carts", tokens["assistant"], json={})
    assert status == 201 and body["owner"].startswith("walkin-")
    assert (await lc.call("GET", f"/api/carts/{body['cartId']}", tokens["assistant"]))[0] == 200  # its walk-in
    assert (await lc.call("POST", "/api/carts", tokens["operator"], json={"owner": "alice"}))[0] == 403
    assert (await lc.call("POST", "/api/carts", tokens["operator-looked-up"], json={"owner": "alice"}))[0] == 201
    assert (await lc.call("POST", "/api/carts", tokens["kiosk"], json={}))[0] == 403
    for bad in BAD:
        assert (await lc.call("POST", "/api/carts", tokens[bad], json={}))[0] == 401


async def test_public_routes_need_no_token(lc: Livecart) -> None:
    for path in ("/healthz", "/api/openapi.json", "/api/catalog", "/api/stock?skus=MUG"):
        assert (await lc.call("GET", path))[0] == 200, path
    assert (await lc.call("POST", "/api/sessions/anonymous"))[0] == 201


@pytest.mark.parametrize("role", ["assistant", "operator", "kiosk", "admin"])
async def test_only_customers_get_kiosk_codes(lc: Livecart, role: str) -> None:
    assert (await lc.call("POST", "/api/kiosk-codes", lc.token("x", role)))[0] == 403
