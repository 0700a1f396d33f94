"""The HTTP edge: token claims of the wrong type, methods a route does not have (issue 16's smaller items)."""
from __future__ import annotations

import time

import jwt
import pytest

from harness import SECRET, Livecart
from yclient import YClient


def forged_claims(**claims: object) -> str:
    """A correctly signed token whose claims are as given (the platform's minting bug, or an attacker's)."""
    return jwt.encode({"sub": "alice", "role": "customer", "exp": int(time.time()) + 3600, **claims}, SECRET, "HS256")


@pytest.mark.parametrize("claims", [{"exp": str(int(time.time()) + 3600)}, {"exp": True}, {"exp": None},
                                    {"exp": [int(time.time()) + 3600]}, {"iat": str(int(time.time()))},
                                    {"nbf": str(int(time.time()) - 10)}],
                         ids=["exp-string", "exp-bool", "exp-null", "exp-list", "iat-string", "nbf-string"])
async def test_time_claims_must_be_json_numbers(lc: Livecart, session, claims: dict) -> None:
    cart = await lc.cart("alice")
    token = forged_claims(**claims)
    status, body = await lc.call("GET", f"/api/carts/{cart}", token)
    assert status == 401 and body["error"]["code"] == "unauthorized", body
    client = await YClient(session, lc.ws_url(cart, token)).connect()
    code, reason = await client.wait_closed()
    assert code == 4401, reason
    # the same token with numbers is fine
    assert (await lc.call("GET", f"/api/carts/{cart}", forged_claims(iat=int(time.time()) - 1)))[0] == 200


@pytest.mark.parametrize("method,path,allowed", [
    ("TRACE", "/api/catalog", {"GET", "HEAD"}), ("PATCH", "/api/catalog", {"GET", "HEAD"}), ("DELETE", "/api/stock/MUG", {"PUT"}),
    ("TRACE", "/api/carts/c-1/lines/l-1", {"PATCH", "DELETE"}), ("GET", "/api/carts/c-1/lines/l-1", {"PATCH", "DELETE"}),
])
async def test_a_method_a_route_lacks_is_405_with_allow(lc: Livecart, method: str, path: str, allowed: set) -> None:
    async with lc.session.request(method, lc.base + path, headers={"Authorization": "Bearer x"}) as r:
        assert r.status == 405
        assert {m.strip() for m in r.headers["Allow"].split(",")} == allowed
        assert (await r.json())["error"]["code"] == "method_not_allowed"
