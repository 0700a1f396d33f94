"""Who may do what: issue 16's access defects (invite codes, orders) and the role × route matrix."""
from __future__ import annotations

import asyncio
import json
import secrets
import urllib.request
from dataclasses import dataclass, field as dc_field
from typing import Any, Awaitable, Callable, Iterator

import aiohttp
import pytest

from harness import SECRET, Livecart, make_config
from livecart.server import auth
from livecart.server.app import create_app
from livecart.server.mail.tokens import tracking_token, unsubscribe_token
from processes import ServerProcess
from yclient import YClient


class World:
    """A customer and the people and things around them, each made when first needed: every defect test
    and every cell of the matrix below starts from one of its own."""

    def __init__(self, base: str, http: aiohttp.ClientSession, customer: str | None = None) -> None:
        self.base, self.http = base, http
        self.n = secrets.token_hex(4)
        self.customer = customer or f"cust-{self.n}"
        self._made: dict[str, Any] = {}

    @staticmethod
    def token(sub: str, role: str = "customer") -> str:
        return auth.mint(SECRET, sub, role)

    async def call(self, method: str, path: str, token: str | None, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, self.base + path, headers=headers, json=body) as r:
            if r.content_type == "text/event-stream":
                return r.status, None  # a live feed answers with its status; the stream itself never ends
            return r.status, await r.json() if r.content_type == "application/json" else await r.text()

    async def ok(self, want: int, method: str, path: str, token: str | None, body: Any = None) -> Any:
        status, answer = await self.call(method, path, token, body)
        assert status == want, (method, path, status, answer)
        return answer

    async def once(self, key: str, make: Callable[[], Awaitable[Any]]) -> Any:
        if key not in self._made:
            self._made[key] = await make()
        return self._made[key]

    async def cart(self) -> str:
        """The customer's cart, the one the cells are about."""
        return await self.once("cart", self.new_cart)

    async def new_cart(self) -> str:
        return (await self.ok(201, "POST", "/api/carts", self.token(self.customer), {"channel": "web"}))["cartId"]

    async def line(self, cart: str) -> str:
        body = await self.ok(201, "POST", f"/api/carts/{cart}/lines", self.token(self.customer), {"sku": "TEE", "qty": 1})
        return body["lineId"]

    async def held(self, cart: str) -> str:
        """`cart` with a line the stock authority holds, ready to check out."""
        line = await self.line(cart)
        for _ in range(1200):  # the hold is decided just after the edit: a bounded (60 s), generous wait for it
            holds = (await self.ok(200, "GET", f"/api/carts/{cart}", self.token(self.customer)))["holds"]
            if holds.get(line, {}).get("status") == "held":
                return cart
            await asyncio.sleep(0.05)
        raise AssertionError(f"the line was never held: {holds}")

    async def order(self, cart: str) -> str:
        await self.held(cart)
        return (await self.ok(201, "POST", f"/api/carts/{cart}/checkout", self.token(self.customer)))["orderId"]

    async def invite(self, cart: str, by: str, role: str = "customer") -> str:
        return (await self.ok(201, "POST", f"/api/carts/{cart}/invites", self.token(by, role)))["code"]

    async def walk_in(self, assistant: str) -> str:
        """A cart an assistant starts for a shopper who has not signed in."""
        body = await self.ok(201, "POST", "/api/carts", self.token(assistant, "assistant"), {"channel": "store"})
        return body["cartId"]

    async def kiosk_code(self) -> str:
        return (await self.ok(201, "POST", "/api/kiosk-codes", self.token(self.customer)))["code"]

    async def sign_in(self, kiosk: str) -> str:
        body = await self.ok(201, "POST", f"/api/kiosks/{kiosk}/sessions", self.token(kiosk, "kiosk"),
                             {"code": await self.kiosk_code()})
        assert body["cartId"] == await self.cart(), body  # the kiosk gets the customer's newest open cart
        return kiosk

    async def kiosk(self) -> str:
        """The shop's kiosk, with the customer signed in at it."""
        return await self.once("kiosk", lambda: self.sign_in(f"kiosk-{self.n}"))

    async def caller(self, role: str) -> str | None:
        """The token of one kind of caller, after whatever makes that caller what it is."""
        n, cart = self.n, await self.cart()
        if role == "owner":
            return self.token(self.customer)
        if role == "other-customer":
            return self.token(f"other-{n}")
        if role == "anonymous":
            return (await self.ok(201, "POST", "/api/sessions/anonymous", None))["token"]
        if role == "no-token":
            return None
        if role == "assistant-invited":
            amy = self.token(f"amy-{n}", "assistant")
            await self.ok(200, "POST", f"/api/invites/{await self.invite(cart, self.customer)}/accept", amy)
            return amy
        if role == "assistant":
            return self.token(f"zed-{n}", "assistant")
        if role == "operator-before-lookup":
            return self.token(f"olga-{n}", "operator")
        if role == "operator-after-lookup":
            otto = self.token(f"otto-{n}", "operator")
            await self.ok(200, "GET", f"/api/customers/{self.customer}", otto)
            return otto
        if role == "kiosk-signed-in":
            return self.token(await self.kiosk(), "kiosk")
        if role == "kiosk-signed-out":  # the kiosk the customer used before, and signed out of
            gone = await self.sign_in(f"gone-{n}")
            assert (await self.ok(200, "DELETE", f"/api/kiosks/{gone}/sessions", self.token(gone, "kiosk")))["signedOut"]
            return self.token(gone, "kiosk")
        assert role == "admin", role
        return self.token(f"root-{n}", "admin")


# -- defect 11: only an assistant (joins) or a customer claiming a walk-in cart may use a code -------------

@pytest.mark.parametrize("sub,role", [("otto", "operator"), ("root", "admin"), ("k1", "kiosk"),
                                      ("alice", "customer"), ("bob", "customer"), ("anon-x", "customer")])
async def test_a_code_to_a_customers_cart_is_refused_to_all_but_assistants_and_kept(
        lc: Livecart, sub: str, role: str) -> None:
    world = World(lc.base, lc.session, "alice")
    cart = await world.cart()
    code = await world.invite(cart, "alice")
    status, body = await world.call("POST", f"/api/invites/{code}/accept", lc.token(sub, role))
    assert status == 403 and body["error"]["code"] == "forbidden", body
    # the code was not used up: the assistant it was meant for still joins with it
    amy = lc.token("amy", "assistant")
    assert await world.call("POST", f"/api/invites/{code}/accept", amy) == (200, {"cartId": cart})
    assert (await world.call("GET", f"/api/carts/{cart}", amy))[0] == 200


@pytest.mark.parametrize("sub,role", [("otto", "operator"), ("root", "admin"), ("k1", "kiosk")])
async def test_a_walk_in_code_is_refused_to_staff_that_cannot_claim_and_kept(lc: Livecart, sub: str, role: str) -> None:
    world = World(lc.base, lc.session, "carol")
    walk_in = await world.walk_in("wally")
    code = await world.invite(walk_in, "wally", "assistant")
    status, body = await world.call("POST", f"/api/invites/{code}/accept", lc.token(sub, role))
    assert status == 403 and body["error"]["code"] == "forbidden", body
    # the customer standing at the till still claims it
    status, body = await world.call("POST", f"/api/invites/{code}/accept", lc.token("carol"))
    assert status == 200 and body["cartId"] != walk_in
    status, cart = await world.call("GET", f"/api/carts/{body['cartId']}", lc.token("carol"))
    assert status == 200 and cart["owner"] == "carol"


# -- defect 12: an order is its customer's, an operator's who looked them up, an admin's, or staff's on its cart --

async def test_an_assistant_sees_only_orders_of_the_carts_it_helps_with(lc: Livecart) -> None:
    await lc.call("PUT", "/api/stock/TEE", lc.token("root", "admin"), json={"onHand": 1000})
    world = World(lc.base, lc.session, "alice")
    helped = await world.cart()
    other_order = await world.order(await world.new_cart())  # another cart of the same customer
    amy = lc.token("amy", "assistant")
    assert (await lc.call("POST", f"/api/invites/{await world.invite(helped, 'alice')}/accept", amy))[0] == 200
    status, body = await lc.call("GET", f"/api/orders/{other_order}", amy)
    assert status == 403 and body["error"]["code"] == "forbidden", body
    helped_order = await world.order(helped)
    assert (await lc.call("GET", f"/api/orders/{helped_order}", amy))[0] == 200
    # and the others the contract names: the customer, an operator only after a lookup, an admin
    assert (await lc.call("GET", f"/api/orders/{other_order}", lc.token("alice")))[0] == 200
    assert (await lc.call("GET", f"/api/orders/{other_order}", lc.token("bob")))[0] == 403
    otto = lc.token("otto", "operator")
    assert (await lc.call("GET", f"/api/orders/{other_order}", otto))[0] == 403
    assert (await lc.call("GET", "/api/customers/alice", otto))[0] == 200  # the lookup
    assert (await lc.call("GET", f"/api/orders/{other_order}", otto))[0] == 200
    assert (await lc.call("GET", f"/api/orders/{other_order}", lc.token("root", "admin")))[0] == 200


# -- the role × route matrix ------------------------------------------------------------------------------
# Every route of /api/openapi.json × every kind of caller, derived from DESIGN.md's role table. Each cell
# gets a world of its own (a fresh customer, cart, staff and kiosk) on a server shared by the module, so a
# cell that changes state (a lookup, a used invite, a sign-out, a payment) cannot change another's answer.

ROLES = ("owner", "other-customer", "anonymous", "no-token", "assistant-invited", "assistant",
         "operator-before-lookup", "operator-after-lookup", "kiosk-signed-in", "kiosk-signed-out", "admin")
OPENERS = ("owner", "assistant-invited", "operator-after-lookup", "kiosk-signed-in", "admin")  # may open the cart
CUSTOMERS = ("owner", "other-customer", "anonymous")
SEE_CUSTOMER = ("owner", "assistant-invited", "operator-before-lookup", "operator-after-lookup", "admin")


def only(ok: int, *allowed: str) -> dict[str, int]:
    """`ok` for the allowed callers, 401 without a token, 403 for everyone else."""
    return {role: ok if role in allowed else 401 if role == "no-token" else 403 for role in ROLES}


def everyone(ok: int) -> dict[str, int]:
    return dict.fromkeys(ROLES, ok)


Make = Callable[[World], Awaitable[Any]]


@dataclass(frozen=True)
class Row:
    """One route (one case of it) and what each caller gets."""

    method: str
    path: str  # as the OpenAPI document spells it
    expect: dict[str, int]
    given: dict[str, Make] = dc_field(default_factory=dict)  # path values (and the query's), "body"
    query: str = ""
    case: str = ""  # tells two rows of one route apart

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}" + (f" ({self.case})" if self.case else "")


def const(value: Any) -> Make:
    async def make(world: World) -> Any:
        return value
    return make


def fresh(prefix: str) -> Make:
    async def make(world: World) -> str:
        return f"{prefix}-{world.n}"
    return make


async def customer(w: World) -> str:
    return w.customer


async def cart(w: World) -> str:
    return await w.cart()


async def line(w: World) -> str:
    return await w.line(await w.cart())


async def held_cart(w: World) -> str:
    return await w.held(await w.cart())


async def order(w: World) -> str:
    return await w.order(await w.cart())


async def other_order(w: World) -> str:
    return await w.order(await w.new_cart())


async def invite_code(w: World) -> str:
    return await w.invite(await w.cart(), w.customer)


async def walk_in_code(w: World) -> str:
    return await w.invite(await w.walk_in(f"wally-{w.n}"), f"wally-{w.n}", "assistant")


async def into_another_cart(w: World) -> dict[str, str]:
    return {"into": await w.new_cart()}


async def anonymous_token_with_cart(w: World) -> dict[str, str]:
    anonymous = await w.ok(201, "POST", "/api/sessions/anonymous", None)
    await w.ok(201, "POST", "/api/carts", anonymous["token"], {"channel": "web"})
    return {"anonymousToken": anonymous["token"]}


async def split_one_of_two(w: World) -> dict[str, list[str]]:
    """The cart with two lines; the body moves the first (a split leaves at least one behind)."""
    cart = await w.cart()
    first = await w.line(cart)
    await w.line(cart)
    return {"lineIds": [first]}


NOTIFY_RULE = {"when": {"event": "cart_idle", "minutes": 60}, "then": {"action": "notify"}}


async def a_rule(w: World) -> str:
    """A nudge rule an admin defined (one that will not fire while the matrix runs)."""
    rule_id = f"rule-{w.n}"
    await w.ok(200, "PUT", f"/api/rules/{rule_id}", w.token("root", "admin"), NOTIFY_RULE)
    return rule_id


async def kiosk(w: World) -> str:
    return await w.kiosk()


async def kiosk_code(w: World) -> dict[str, str]:
    return {"code": await w.kiosk_code()}


async def new_cart_for_customer(w: World) -> dict[str, str]:
    return {"channel": "web", "owner": w.customer}  # customers and assistants get their own owner regardless


async def tracked(w: World) -> str:
    """An order of the world's customer, the one its tracking token is for."""
    return await w.once("tracked", lambda: order(w))


async def tracked_token(w: World) -> str:
    return tracking_token(SECRET, await tracked(w))


async def unsubscribe_link(w: World) -> str:
    return unsubscribe_token(SECRET, w.customer)


ROWS = [
    Row("GET", "/healthz", everyone(200)),
    Row("GET", "/metrics", everyone(200)),
    Row("GET", "/api/openapi.json", everyone(200)),
    Row("GET", "/api/docs", everyone(200)),
    Row("GET", "/api/docs/swagger-ui-bundle.js", everyone(200)),
    Row("GET", "/api/docs/swagger-ui.css", everyone(200)),
    Row("POST", "/api/sessions/anonymous", everyone(201)),
    Row("GET", "/api/admin/events", only(200, "admin")),
    Row("GET", "/api/me/events", only(200, *CUSTOMERS)),
    Row("POST", "/api/sessions/claim", only(200, "owner", "other-customer"), {"body": anonymous_token_with_cart}),
    Row("POST", "/api/carts", only(201, *CUSTOMERS, "assistant-invited", "assistant", "operator-after-lookup", "admin"),
        {"body": new_cart_for_customer}),
    Row("GET", "/api/carts", only(200, "owner", "operator-before-lookup", "operator-after-lookup", "admin"),
        {"customer": customer}, query="owner={customer}"),
    Row("GET", "/api/carts", only(200, "admin"), query="status=open", case="the shop floor's open carts"),
    Row("GET", "/api/carts/{cartId}", only(200, *OPENERS), {"cartId": cart}),
    Row("POST", "/api/carts/{cartId}/lines", only(201, *OPENERS), {"cartId": cart, "body": const({"sku": "TEE", "qty": 1})}),
    Row("PATCH", "/api/carts/{cartId}/lines/{lineId}", only(200, *OPENERS),
        {"cartId": cart, "lineId": line, "body": const({"qty": 2})}),
    Row("DELETE", "/api/carts/{cartId}/lines/{lineId}", only(200, *OPENERS), {"cartId": cart, "lineId": line}),
    Row("POST", "/api/carts/{cartId}/messages", only(201, *OPENERS), {"cartId": cart, "body": const({"text": "hello"})}),
    Row("POST", "/api/carts/{cartId}/invites", only(201, *OPENERS), {"cartId": cart}),
    Row("POST", "/api/invites/{code}/accept", only(200, "assistant-invited", "assistant"), {"code": invite_code},
        case="to a customer's cart"),
    Row("POST", "/api/invites/{code}/accept", only(200, *CUSTOMERS, "assistant-invited", "assistant"),
        {"code": walk_in_code}, case="to a walk-in cart"),
    Row("POST", "/api/carts/{cartId}/merge", only(200, "owner", "operator-after-lookup", "admin"),
        {"cartId": cart, "body": into_another_cart}),
    Row("POST", "/api/carts/{cartId}/split", only(201, *OPENERS), {"cartId": cart, "body": split_one_of_two}),
    Row("PUT", "/api/checkout-groups/{group}", only(200, "admin"),
        {"group": fresh("grp"), "body": const({"conflictsWith": ["general"]})}),
    Row("GET", "/api/checkout-groups", only(200, "admin")),
    Row("PUT", "/api/rules/{ruleId}", only(200, "admin"), {"ruleId": fresh("rule"), "body": const(NOTIFY_RULE)}),
    Row("GET", "/api/rules", only(200, "admin")),
    Row("DELETE", "/api/rules/{ruleId}", only(200, "admin"), {"ruleId": a_rule}),
    Row("GET", "/api/catalog", everyone(200)),
    Row("PUT", "/api/catalog/{sku}", only(200, "admin"), {"sku": fresh("NEW"), "body": const({"name": "New", "price": 100})}),
    Row("GET", "/api/stock", everyone(200), query="skus=TEE"),
    Row("GET", "/api/stock/events", everyone(200), query="skus=TEE"),
    Row("PUT", "/api/stock/{sku}", only(200, "admin"), {"sku": fresh("NEW"), "body": const({"onHand": 5})}),
    Row("POST", "/api/stock/{sku}/adjust", only(200, "admin"),
        {"sku": fresh("NEW"), "body": const({"delta": 3, "reason": "delivery"})}),
    Row("PUT", "/api/discounts/{code}", only(200, "admin"), {"code": fresh("SALE"), "body": const({"percentOff": 10})}),
    Row("POST", "/api/carts/{cartId}/discounts", only(201, "admin"),
        {"cartId": cart, "body": const({"code": "SORRY", "amountOff": 500})}),
    Row("POST", "/api/carts/{cartId}/checkout/step", only(200, *OPENERS), {"cartId": cart, "body": const({"step": "details"})}),
    Row("POST", "/api/carts/{cartId}/checkout", only(201, *OPENERS), {"cartId": held_cart}),
    Row("POST", "/api/orders/{orderId}/payment", only(200, "admin"),
        {"orderId": order, "body": const({"status": "paid", "reference": "psp-1"})}),
    Row("POST", "/api/orders/{orderId}/status", only(200, "admin"), {"orderId": order, "body": const({"status": "cancelled"})}),
    Row("GET", "/api/orders/{orderId}", only(200, "owner", "assistant-invited", "operator-after-lookup", "kiosk-signed-in", "admin"),
        {"orderId": order}, case="of the cart"),
    Row("GET", "/api/orders/{orderId}", only(200, "owner", "operator-after-lookup", "admin"), {"orderId": other_order},
        case="of another cart of the same customer"),
    Row("GET", "/api/customers/{customerId}", only(200, *SEE_CUSTOMER), {"customerId": customer}),
    Row("GET", "/api/customers/{customerId}/orders", only(200, *SEE_CUSTOMER), {"customerId": customer}),
    Row("PUT", "/api/customers/{customerId}", only(200, "owner", "admin"),
        {"customerId": customer, "body": const({"name": "Pat Doe", "marketingConsent": True})}),
    Row("GET", "/api/customers", only(200, "operator-before-lookup", "operator-after-lookup", "admin"),
        {"customer": customer}, query="q={customer}"),
    Row("GET", "/api/orders", only(200, *CUSTOMERS, "admin"), case="own orders (a customer's), all (an admin's)"),
    Row("GET", "/api/orders", only(200, "owner", "assistant-invited", "operator-after-lookup", "kiosk-signed-in", "admin"),
        {"customer": customer, "order": order}, query="customer={customer}", case="of one customer"),
    Row("GET", "/api/orders/events", only(200, *CUSTOMERS, "admin"), case="own orders (a customer's), all (an admin's)"),
    Row("GET", "/api/orders/events", only(200, "owner", "assistant-invited", "operator-after-lookup", "kiosk-signed-in",
                                            "admin"),
        {"customer": customer, "order": order}, query="customer={customer}", case="of one customer"),
    Row("PUT", "/api/customers/{customerId}/favourites/{sku}", only(200, "owner", "admin"),
        {"customerId": customer, "sku": const("TEE")}),
    Row("DELETE", "/api/customers/{customerId}/favourites/{sku}", only(200, "owner", "admin"),
        {"customerId": customer, "sku": const("TEE")}),
    Row("GET", "/orders/{orderId}", everyone(200), {"orderId": tracked, "t": tracked_token}, query="t={t}"),
    Row("GET", "/api/orders/{orderId}/tracking", everyone(200), {"orderId": tracked, "t": tracked_token},
        query="t={t}"),
    Row("GET", "/unsubscribe", everyone(200), {"t": unsubscribe_link}, query="t={t}"),
    Row("POST", "/unsubscribe", everyone(200), {"t": unsubscribe_link}, query="t={t}"),
    Row("POST", "/api/mailings", only(400, "admin"), {"body": const({"subject": "Hi", "text": "News",
                                                                     "segment": {"bought": ["NOBODY-BOUGHT"]}})},
        case="to a segment nobody is in (400 no_recipients)"),
    Row("GET", "/api/mailings", only(200, "admin")),
    Row("GET", "/api/mailings/{mailingId}", only(404, "admin"), {"mailingId": const("m-unknown")},
        case="unknown"),
    Row("GET", "/api/mail/outbox", only(200, "admin")),
    Row("GET", "/api/mail/caught", only(200, "admin")),
    Row("POST", "/api/kiosk-codes", only(201, *CUSTOMERS)),
    Row("POST", "/api/kiosks/{kioskId}/sessions", only(201, "kiosk-signed-in", "admin"), {"kioskId": kiosk, "body": kiosk_code}),
    Row("GET", "/api/kiosks/{kioskId}", only(200, "kiosk-signed-in", "admin"), {"kioskId": kiosk}),
    Row("GET", "/api/kiosks/{kioskId}/sessions", only(200, "kiosk-signed-in", "admin"), {"kioskId": kiosk}),
    Row("POST", "/api/kiosks/{kioskId}/sessions/ping", only(200, "kiosk-signed-in", "admin"), {"kioskId": kiosk}),
    Row("DELETE", "/api/kiosks/{kioskId}/sessions", only(200, "kiosk-signed-in", "admin"), {"kioskId": kiosk}),
]


def _post(url: str, token: str, body: dict[str, Any], method: str = "PUT") -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        assert r.status == 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One `livecart serve` for the module, with a product nobody runs out of."""
    proc = ServerProcess(tmp_path_factory.mktemp("matrix") / "data").start()
    try:
        admin = auth.mint(SECRET, "root", "admin")
        _post(f"{proc.base}/api/catalog/TEE", admin, {"name": "Tee", "price": 1500})
        _post(f"{proc.base}/api/stock/TEE", admin, {"onHand": 1_000_000})
        yield proc
    finally:
        proc.stop()


async def test_every_route_has_a_row(server: ServerProcess, session: aiohttp.ClientSession, tmp_path) -> None:
    async with session.get(server.base + "/api/openapi.json") as r:
        documented = {(method.upper(), path) for path, ops in (await r.json())["paths"].items() for method in ops}
    assert documented == {(row.method, row.path) for row in ROWS}
    # and the document names every HTTP route the app has (websockets are the y-protocols and feed sockets)
    app = create_app(make_config(tmp_path))
    routed = {(route.method, route.resource.canonical) for route in app.router.routes()
              if route.method != "HEAD" and route.resource is not None
              and not route.resource.canonical.startswith("/ws/")}
    assert routed == documented


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.id)
async def test_route_for_every_caller(server: ServerProcess, session: aiohttp.ClientSession, row: Row) -> None:
    wrong: dict[str, tuple[int, int, Any]] = {}
    for role in ROLES:
        world = World(server.base, session)
        token = await world.caller(role)
        given = {name: await make(world) for name, make in row.given.items()}
        body = given.pop("body", None)
        path = row.path.format(**given) + ("?" + row.query.format(**given) if row.query else "")
        status, answer = await world.call(row.method, path, token, body)
        if status != row.expect[role]:
            wrong[role] = (row.expect[role], status, answer)
        elif status in (401, 403):
            assert answer["error"]["code"] == {401: "unauthorized", 403: "forbidden"}[status], (role, answer)
    assert not wrong, "role: (expected, got, answer) " + json.dumps(wrong, indent=1, default=str)


async def test_cart_websocket_for_every_caller(server: ServerProcess, session: aiohttp.ClientSession) -> None:
    wrong: dict[str, tuple[str, Any]] = {}
    for role in ROLES:
        world = World(server.base, session)
        token = await world.caller(role)
        query = f"?token={token}" if token else ""
        client = await YClient(session, server.ws(f"/ws/carts/{await world.cart()}{query}")).connect()
        if role in OPENERS:
            await client.wait_synced(timeout=60)
            await client.close()
        else:
            code, reason = await client.wait_closed(timeout=60)
            want = 4401 if role == "no-token" else 4403
            if code != want:
                wrong[role] = (str(want), (code, reason))
    assert not wrong, wrong


# -- the feed sockets: each live feed's websocket beside its event stream, for every caller ----------------

OPEN = 101  # the handshake's Switching Protocols, and the socket stays open: its reader is being served


def open_for(*allowed: str) -> dict[str, int]:
    """OPEN for the allowed callers, 4401 without a token, 4403 for everyone else (the close codes)."""
    return {role: OPEN if role in allowed else 4401 if role == "no-token" else 4403 for role in ROLES}


@dataclass(frozen=True)
class SocketRow:
    """One feed socket (one case of it) and what each caller gets: OPEN, or the code it is closed with."""

    path: str
    expect: dict[str, int]
    given: dict[str, Make] = dc_field(default_factory=dict)  # the query's values
    query: str = ""
    case: str = ""

    @property
    def id(self) -> str:
        return self.path + (f" ({self.case})" if self.case else "")


SOCKET_ROWS = [
    SocketRow("/ws/stock", dict.fromkeys(ROLES, OPEN), query="skus=TEE"),
    SocketRow("/ws/admin", open_for("admin")),
    SocketRow("/ws/me", open_for(*CUSTOMERS)),
    SocketRow("/ws/orders", open_for(*CUSTOMERS, "admin"), case="own orders (a customer's), all (an admin's)"),
    SocketRow("/ws/orders", open_for("owner", "assistant-invited", "operator-after-lookup", "kiosk-signed-in", "admin"),
              {"customer": customer}, query="customer={customer}", case="of one customer"),
]


async def socket_answer(session: aiohttp.ClientSession, url: str) -> tuple[int | None, str]:
    """(OPEN, "") when the server serves the reader (it answers a ping from inside the feed's read loop),
    else the code and reason of its close frame (which, refused, it sends before reading anything)."""
    ws = await session.ws_connect(url, autoping=False)
    try:
        try:
            await ws.ping(b"matrix")
        except ConnectionError:
            pass  # already closed by the server: its close frame is still there to read
        while True:
            msg = await asyncio.wait_for(ws.receive(), 60)
            if msg.type is aiohttp.WSMsgType.PONG:
                return OPEN, ""
            if msg.type is aiohttp.WSMsgType.CLOSE:  # the server's own code (see ws_attack.close_of)
                return msg.data, msg.extra or ""
            if msg.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return ws.close_code, ""
    finally:
        await ws.close()


def test_every_feed_socket_has_a_row(tmp_path) -> None:
    app = create_app(make_config(tmp_path))
    sockets = {route.resource.canonical for route in app.router.routes()
               if route.resource is not None and route.resource.canonical.startswith("/ws/")}
    assert sockets - {"/ws/carts/{cartId}"} == {row.path for row in SOCKET_ROWS}  # carts: the test above


@pytest.mark.parametrize("row", SOCKET_ROWS, ids=lambda row: row.id)
async def test_feed_socket_for_every_caller(server: ServerProcess, session: aiohttp.ClientSession, row: SocketRow) -> None:
    wrong: dict[str, tuple[int, tuple[int | None, str]]] = {}
    for role in ROLES:
        world = World(server.base, session)
        token = await world.caller(role)
        given = {name: await make(world) for name, make in row.given.items()}
        query = "&".join(part for part in (row.query.format(**given), f"token={token}" if token else "") if part)
        answer = await socket_answer(session, server.ws(row.path + (f"?{query}" if query else "")))
        if answer[0] != row.expect[role]:
            wrong[role] = (row.expect[role], answer)
    assert not wrong, "role: (expected, (got, reason)) " + json.dumps(wrong, indent=1, default=str)
