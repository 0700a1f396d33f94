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
    ("PUT", "/api/stock/events", {"GET", "HEAD"}),  # the stock feed's path is no SKU to set stock of
])
async def test_a_method_a_route_lacks_is_405_with_allow(lc: Livecart, method: str, path: str, allowed: set) -> None:
    async with lc.session.request(method, lc.base + path, headers={"Authorization": "Bearer x"}) as r:
        assert r.status == 405
        assert {m.strip() for m in r.headers["Allow"].split(",")} == allowed
        assert (await r.json())["error"]["code"] == "method_not_allowed"


# -- what schemathesis found: the server accepted what /api/openapi.json says is invalid ---------------------

@pytest.mark.parametrize("owner", ["", 5, None, ["alice"]])
@pytest.mark.parametrize("sub,role", [("alice", "customer"), ("amy", "assistant"), ("root", "admin")])
async def test_an_owner_given_must_be_a_customer_id(lc: Livecart, sub: str, role: str, owner: object) -> None:
    status, body = await lc.call("POST", "/api/carts", lc.token(sub, role), json={"channel": "web", "owner": owner})
    assert status == 400 and body["error"]["code"] == "bad_owner", body


@pytest.mark.parametrize("field", [{"kind": "text", "maxLength": 0}, {"kind": "list", "maxItems": 0},
                                   {"maxLength": -5}, {"maxLength": "12"}, {"maxItems": 2.5}, {"maxLength": True},
                                   {"required": "no"}, {"kind": "number"}, []])
async def test_a_personalisation_field_spec_is_checked(lc: Livecart, field: object) -> None:
    body = {"name": "Card", "price": 300, "personalisation": {"message": field}}
    status, answer = await lc.call("PUT", "/api/catalog/CARD", lc.token("root", "admin"), json=body)
    assert status == 400 and answer["error"]["code"] == "bad_product", answer
    assert "CARD" not in {p["sku"] for p in (await lc.call("GET", "/api/catalog"))[1]["products"]}


@pytest.mark.parametrize("fields", [False, [], "", 0])
async def test_personalisation_is_an_object_or_null(lc: Livecart, fields: object) -> None:
    admin = lc.token("root", "admin")
    status, answer = await lc.call("PUT", "/api/catalog/CARD", admin, json={"name": "Card", "price": 3, "personalisation": fields})
    assert status == 400 and answer["error"]["code"] == "bad_product", answer
    assert (await lc.call("PUT", "/api/catalog/CARD", admin, json={"name": "Card", "price": 3, "personalisation": None}))[0] == 200


async def test_a_whole_number_written_with_a_point_is_that_integer(lc: Livecart) -> None:
    admin = lc.token("root", "admin")
    status, level = await lc.call("PUT", "/api/stock/MUG", admin, data=b'{"onHand": 320.0}')
    assert status == 200 and level["onHand"] == 320, level
    status, rule = await lc.call("PUT", "/api/discounts/TEN", admin, data=b'{"percentOff": 1e1}')
    assert status == 200 and rule["percentOff"] == 10, rule
    for fraction in (b'{"onHand": 320.5}', b'{"onHand": 1e300}'):
        assert (await lc.call("PUT", "/api/stock/MUG", admin, data=fraction))[0] == 400
