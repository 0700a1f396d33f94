"""Each route's declared access rule (`api.add(..., auth=...)`) is enforced by the guard before the
handler runs: a refused caller is told so, whatever it sent, and nothing it sent is read or acted on."""
from __future__ import annotations

from harness import Livecart
from livecart.server.openapi import api
import livecart.server.routes  # noqa: F401 (registers every route, as the app does)

NOT_JSON = b"{not json"


async def test_a_caller_the_rule_refuses_gets_403_before_its_body_is_read(lc: Livecart) -> None:
    cart = await lc.cart("alice")
    cases = [
        ("POST", "/api/carts", lc.token("k1", "kiosk")),  # a kiosk gets its cart by signing a customer in
        ("PUT", "/api/catalog/MUG", lc.token("alice")),
        ("POST", "/api/orders/o-nope/payment", lc.token("alice")),
        ("POST", f"/api/carts/{cart}/lines", lc.token("bob")),
        ("POST", f"/api/carts/{cart}/discounts", lc.token("alice")),  # she may open it, but offers are an admin's
        ("POST", "/api/sessions/claim", lc.token("anon-x")),
    ]
    for method, path, token in cases:
        status, body = await lc.call(method, path, token, data=NOT_JSON)
        assert (status, body["error"]["code"]) == (403, "forbidden"), (method, path, body)


async def test_what_the_path_names_is_looked_up_before_the_body(lc: Livecart) -> None:
    status, body = await lc.call("POST", "/api/carts/c-nope/lines", lc.token("alice"), data=NOT_JSON)
    assert (status, body["error"]["code"]) == (404, "no_cart"), body
    status, body = await lc.call("GET", "/api/orders/o-nope", lc.token("alice"))
    assert (status, body["error"]["code"]) == (404, "no_order"), body


async def test_a_refused_caller_changes_nothing(lc: Livecart) -> None:
    assert (await lc.call("PUT", "/api/catalog/NEW", lc.token("alice"), json={"name": "New", "price": 1}))[0] == 403
    status, catalog = await lc.call("GET", "/api/catalog")
    assert status == 200 and "NEW" not in {p["sku"] for p in catalog["products"]}


def test_every_documented_route_with_roles_says_which() -> None:
    for path, ops in api.paths.items():
        for method, op in ops.items():
            if "security" in op:
                assert op["description"].startswith("Roles: ") and len(op["description"]) > len("Roles: ."), (method, path)
