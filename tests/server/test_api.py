"""HTTP API of the sync core: carts, catalog, sessions, errors, OpenAPI, health."""
from __future__ import annotations

from harness import Livecart
from livecart.server.openapi import api


async def test_create_and_read_a_cart(lc: Livecart) -> None:
    status, body = await lc.call("POST", "/api/carts", lc.token("alice"), json={"channel": "app"})
    assert status == 201
    cart = body["cartId"]
    status, body = await lc.call("GET", f"/api/carts/{cart}", lc.token("alice"))
    assert status == 200
    assert body["owner"] == "alice" and body["channel"] == "app" and body["status"] == "open"
    assert body["lines"] == {} and body["meta"] == {"note": "", "discountCodes": []}
    status, body = await lc.call("GET", "/api/carts?owner=alice", lc.token("alice"))
    assert [c["id"] for c in body["carts"]] == [cart]


async def test_errors_have_one_shape_and_the_right_status(lc: Livecart) -> None:
    cart = await lc.cart("alice")
    cases = [
        ("GET", f"/api/carts/{cart}", None, None, 401, "unauthorized"),
        ("GET", f"/api/carts/{cart}", lc.token("bob"), None, 403, "forbidden"),
        ("GET", "/api/carts/c-nope", lc.token("alice"), None, 404, "no_cart"),
        ("POST", "/api/carts", lc.token("alice"), {"channel": "fax"}, 400, "bad_channel"),
        ("GET", "/api/carts?owner=bob", lc.token("alice"), None, 403, "forbidden"),
        ("PUT", "/api/catalog/X", lc.token("alice"), {"name": "X", "price": 1}, 403, "forbidden"),
        ("PUT", "/api/catalog/X", lc.token("root", "admin"), {"name": "X", "price": -1}, 400, "bad_product"),
        ("GET", "/api/nothing-here", None, None, 404, "not_found"),
    ]
    for method, path, token, body, status, code in cases:
        got_status, got = await lc.call(method, path, token, json=body)
        assert (got_status, got["error"]["code"]) == (status, code), (method, path, got)
        assert got["error"]["message"]
    got_status, got = await lc.call("POST", "/api/carts", lc.token("alice"), data=b"{not json")
    assert got_status == 400 and got["error"]["code"] == "bad_json"


async def test_anonymous_session_token_opens_its_own_cart(lc: Livecart) -> None:
    status, body = await lc.call("POST", "/api/sessions/anonymous")
    assert status == 201 and body["customerId"].startswith("anon-")
    status, created = await lc.call("POST", "/api/carts", body["token"], json={"channel": "web"})
    assert status == 201
    client = await lc.client(created["cartId"], body["token"])
    assert client.synced.is_set()


async def test_openapi_describes_every_route(lc: Livecart) -> None:
    status, spec = await lc.call("GET", "/api/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    served = {(r.method.lower(), r.resource.canonical) for r in lc.app.router.routes()
              if r.method != "HEAD" and r.resource is not None and not r.resource.canonical.startswith("/ws/")}
    described = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert served == described
    assert served == {(m, p) for p, ops in api.paths.items() for m in ops}


async def test_healthz(lc: Livecart) -> None:
    status, body = await lc.call("GET", "/healthz")
    assert status == 200 and body["ok"] is True
