"""Order mail over real SMTP (aiosmtpd on loopback): each mail once, the tracking page, faults, crashes."""
from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harness import SECRET, Livecart, free_port, make_config
from livecart.server import auth
from livecart.server.services import SERVICES
from livecart.server.mail.tokens import tracking_token
from livecart.server.outbox import Outbox
from livecart.server.store import open_store
from livecart.server.store.index import open_index
from processes import ServerProcess
from smtp_sink import Sink
from yclient import eventually

ADMIN = auth.mint(SECRET, "root", "admin", ttl_seconds=3600)
LINK = re.compile(r"https?://[^\s\"<>]+/orders/([\w-]+)\?t=([\w-]+)")


class Shop:
    """A livecart (in this process or a child) driven over HTTP, as the platform and a shopper do."""

    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base, self.session = base, session

    async def call(self, method: str, path: str, token: str | None = ADMIN, **kw: Any) -> tuple[int, Any]:
        headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **kw.pop("headers", {})}
        async with self.session.request(method, self.base + path, headers=headers, **kw) as r:
            return r.status, await r.json() if r.content_type == "application/json" else await r.text()

    async def ok(self, want: int, method: str, path: str, token: str | None = ADMIN, **kw: Any) -> Any:
        status, body = await self.call(method, path, token, **kw)
        assert status == want, (method, path, status, body)
        return body

    async def stock(self, sku: str = "MUG", on_hand: int = 1000) -> None:
        await self.ok(200, "PUT", f"/api/catalog/{sku}", json={"name": sku.title(), "price": 1250})
        await self.ok(200, "PUT", f"/api/stock/{sku}", json={"onHand": on_hand})

    async def order(self, customer: str, sku: str = "MUG") -> str:
        """A checked-out order of `customer` (awaiting payment)."""
        token = auth.mint(SECRET, customer, "customer")
        cart = (await self.ok(201, "POST", "/api/carts", token, json={"channel": "web"}))["cartId"]
        line = (await self.ok(201, "POST", f"/api/carts/{cart}/lines", token, json={"sku": sku, "qty": 2}))["lineId"]

        async def held() -> bool:
            holds = (await self.ok(200, "GET", f"/api/carts/{cart}", token))["holds"]
            return holds.get(line, {}).get("status") == "held"
        await eventually(held, what="the line held")
        return (await self.ok(201, "POST", f"/api/carts/{cart}/checkout", token))["orderId"]

    async def pay(self, order_id: str) -> None:
        await self.ok(200, "POST", f"/api/orders/{order_id}/payment", json={"status": "paid", "reference": "psp"})

    async def move(self, order_id: str, status: str) -> None:
        await self.ok(200, "POST", f"/api/orders/{order_id}/status", json={"status": status})

    async def pending(self) -> int:
        return (await self.ok(200, "GET", "/api/mail/outbox"))["orders"]["pending"]


async def profile(store: Any, customer: str, email: str, name: str = "", consent: bool = False) -> None:
    """The customer's profile as issue 18's `PUT /api/customers/{id}` keeps it (in the shop index)."""
    index = open_index(store)
    await index.open()
    await index.put_customer(customer, {"email": email or None, "name": name or None, "marketingConsent": consent})


@pytest.fixture
async def sink():
    s = await Sink().start()
    yield s
    await s.close()


def mailing_config(tmp_path: Path, sink: Sink, **overrides: Any):
    return make_config(tmp_path, **{"smtp_url": sink.url, "mail_retry_base": 0.05, "smtp_timeout": 5.0, **overrides})


async def test_every_order_mail_arrives_once_with_its_links(tmp_path, session, sink) -> None:
    lc = await Livecart(mailing_config(tmp_path, sink, public_url="https://shop.example"), session).start()
    try:
        shop = Shop(lc.base, session)
        await shop.stock()
        store = lc.app[SERVICES].store
        await profile(store, "ada", "ada@example.com", "Ada Lovelace")
        await profile(store, "bob", "bob@example.com")
        first, second = await shop.order("ada"), await shop.order("bob")
        await shop.pay(first)
        await shop.pay(first)  # the platform reports twice: still one mail
        await shop.ok(200, "POST", f"/api/orders/{first}/status", json={"status": "dispatched", "tracking": {
            "carrier": "Parcelforce", "number": "PF123", "url": "https://track.example/PF123"}})
        await shop.move(first, "delivered")
        await shop.pay(second)
        await shop.move(second, "cancelled")
        await eventually(lambda: len(sink.delivered()) == 5, what="five mails")
        await eventually(lambda: _no_pending(shop), what="the outbox emptied")
        mails = sink.delivered()
        assert [(m.to, m.message["Subject"]) for m in mails if m.to == "ada@example.com"] == [
            ("ada@example.com", f"Your order {first} is confirmed"),
            ("ada@example.com", f"Your order {first} is on its way"),
            ("ada@example.com", f"Your order {first} was delivered")]
        assert [m.message["Subject"] for m in sink.delivered("bob@example.com")] == [
            f"Your order {second} is confirmed", f"Your order {second} was cancelled"]
        assert len({m.message_id for m in mails}) == 5  # one Message-ID per mail
        for mail in mails:
            order_id = first if mail.to == "ada@example.com" else second
            token = tracking_token(SECRET, order_id)
            assert f"https://shop.example/orders/{order_id}?t={token}" in mail.text
            assert f'href="https://shop.example/orders/{order_id}?t={token}"' in mail.html
            assert mail.message.get_content_type() == "multipart/alternative"
            assert "Ada Lovelace" in str(mail.message["To"]) or mail.to != "ada@example.com"
        dispatched = sink.delivered("ada@example.com")[1]
        assert "https://track.example/PF123" in dispatched.text and "Parcelforce" in dispatched.text
        assert 'href="https://track.example/PF123"' in dispatched.html
        assert "track.example" not in sink.delivered("ada@example.com")[0].text  # only with dispatched
        # the link in the mail opens the order's live page, without signing in
        order_id, token = LINK.search(dispatched.text).groups()
        status, page = await shop.call("GET", f"/orders/{order_id}?t={token}", None)
        assert status == 200 and "dispatched" in page and "https://track.example/PF123" in page
        await asyncio.sleep(0.3)  # nothing more comes
        assert len(sink.caught) == 5
    finally:
        await lc.stop()


async def _no_pending(shop: Shop) -> bool:
    return await shop.pending() == 0


async def test_tracking_page_shows_live_status_and_refuses_other_tokens(lc: Livecart, session) -> None:
    shop = Shop(lc.base, session)
    await shop.stock()
    first, second = await shop.order("ada"), await shop.order("bob")
    good = tracking_token(SECRET, first)
    status, view = await shop.call("GET", f"/api/orders/{first}/tracking?t={good}", None)
    assert status == 200 and view["status"] == "awaiting_payment" and view["tracking"] is None
    assert view["lines"][0]["qty"] == 2 and "customerId" not in view  # no personal details on a shared link
    await shop.pay(first)
    await shop.move(first, "dispatched")
    status, view = await shop.call("GET", f"/api/orders/{first}/tracking?t={good}", None)
    assert view["status"] == "dispatched" and [h["status"] for h in view["history"]] == [
        "awaiting_payment", "confirmed", "dispatched"]
    status, page = await shop.call("GET", f"/orders/{first}?t={good}", None)
    assert status == 200 and "dispatched" in page
    for path in (f"/orders/{first}?t={tracking_token(SECRET, second)}",  # another order's token
                 f"/orders/{first}?t={good[:-1]}x", f"/orders/{first}", f"/orders/{first}?t=",
                 f"/orders/o-nope?t={tracking_token(SECRET, 'o-nope')}",  # a well-signed unknown order
                 f"/api/orders/{first}/tracking?t={tracking_token(SECRET, second)}"):
        status, body = await shop.call("GET", path, None)
        assert status == 404, path
        assert body["error"]["code"] == "no_order"


async def test_smtp_refusing_timing_out_and_dropping_mid_data_is_retried_nothing_lost(
        tmp_path, session, sink) -> None:
    script = {"refuse@example.com": ["refuse", "refuse", "ok"], "drop@example.com": ["drop", "ok"],
              "hang@example.com": ["hang", "ok"], "mixed@example.com": ["drop", "refuse", "hang", "ok"],
              "gone@example.com": ["reject"]}
    sink.rule = lambda to, nth: script.get(to, ["ok"])[min(nth, len(script.get(to, ["ok"]))) - 1]
    lc = await Livecart(mailing_config(tmp_path, sink, smtp_timeout=1.0), session).start()
    try:
        shop = Shop(lc.base, session)
        await shop.stock()
        for customer in [*script, "fine@example.com"]:
            await profile(lc.app[SERVICES].store, customer.partition("@")[0], customer)
            await shop.pay(await shop.order(customer.partition("@")[0]))
        wanted = set(script) - {"gone@example.com"} | {"fine@example.com"}
        await eventually(lambda: {m.to for m in sink.delivered()} == wanted, what="every good address's mail")
        sink.release.set()  # the hung answers come, late: they count for nothing

        async def settled() -> bool:
            box = (await shop.ok(200, "GET", "/api/mail/outbox"))["orders"]
            return box["pending"] == 0 and len(box["dead"]) == 1
        await eventually(settled, what="the outbox settled")
        for to in wanted:  # once each, after as many tries as the script says
            assert len(sink.delivered(to)) == 1, to
            assert sink.tries(to) == len(script.get(to, ["ok"])), to
        ids = {c.message_id for c in sink.caught if c.to == "mixed@example.com"}
        assert len(ids) == 1  # every attempt carried the same Message-ID
        dead = (await shop.ok(200, "GET", "/api/mail/outbox"))["orders"]["dead"]
        assert "550" in dead[0]["lastError"] and "gone@example.com" in dead[0]["lastError"]
        assert sink.tries("gone@example.com") == 1  # a 550 to the recipient is not hammered
    finally:
        await lc.stop()


async def test_smtp_server_down_for_a_while_gets_the_mail_later(tmp_path, session, sink) -> None:
    await sink.down()
    lc = await Livecart(mailing_config(tmp_path, sink), session).start()
    try:
        shop = Shop(lc.base, session)
        await shop.stock()
        await profile(lc.app[SERVICES].store, "ada", "ada@example.com")
        order_id = await shop.order("ada")
        await shop.pay(order_id)

        async def refused() -> bool:
            jobs = await lc.app[SERVICES].mail.outbox.jobs()
            return any("Connect" in j.get("lastError", "") or "refused" in j.get("lastError", "").lower()
                       for j in jobs.values())
        await eventually(refused, what="a refused attempt")
        await sink.up()
        await eventually(lambda: len(sink.delivered()) == 1, what="the mail after the server came back")
        await eventually(lambda: _no_pending(shop), what="the outbox emptied")
        assert sink.delivered()[0].message["Subject"] == f"Your order {order_id} is confirmed"
        await asyncio.sleep(0.3)
        assert len(sink.caught) == 1
    finally:
        await lc.stop()


async def test_a_restart_after_the_server_accepted_sends_no_second_copy(tmp_path, session, sink, monkeypatch) -> None:
    """The process dies after the SMTP server's 250 but before the outbox forgot the mail: the lease
    comes due again in the next process, which sees the mail was sent and sends nothing."""
    settle = Outbox._settle
    dying = asyncio.Event()

    async def die_before_settling(self, lease_key, job, attempt, outcome) -> None:
        if self.kind == "mail-outbox" and not dying.is_set():
            dying.set()
            return  # the crash: the lease stays behind
        await settle(self, lease_key, job, attempt, outcome)
    monkeypatch.setattr(Outbox, "_settle", die_before_settling)
    config = mailing_config(tmp_path, sink, smtp_timeout=0.5)  # leases run out 2 s after an attempt began
    first = await Livecart(config, session).start()
    shop = Shop(first.base, session)
    await shop.stock()
    await profile(first.app[SERVICES].store, "ada", "ada@example.com")
    order_id = await shop.order("ada")
    await shop.pay(order_id)
    await eventually(lambda: len(sink.delivered()) == 1 and dying.is_set(), what="the accepted mail")
    await first.stop()

    second = await Livecart(replace(config, port=free_port()), session).start()
    try:
        shop = Shop(second.base, session)
        assert await shop.pending() == 1  # the lease the crash left
        await eventually(lambda: _no_pending(shop), what="the lease came due and was settled")
        assert len(sink.caught) == 1 and sink.tries("ada@example.com") == 1
    finally:
        await second.stop()


def _serve(data_dir: Path, sink: Sink, port: int | None = None) -> ServerProcess:
    return ServerProcess(data_dir, "--smtp-url", sink.url, "--smtp-timeout", "1", "--mail-retry-base", "0.1",
                         port=port).start()


async def test_serve_killed_between_outbox_write_and_delivery_delivers_after_restart(
        tmp_path, session, sink) -> None:
    """`livecart serve` writes the mail to its outbox while the SMTP server is away, is killed with
    SIGKILL, and the next process on the same data dir delivers it once the server is back."""
    await sink.down()
    data = tmp_path / "data"
    data.mkdir()
    store = open_store("sqlite", data)
    await store.open()
    await profile(store, "ada", "ada@example.com", "Ada")
    await store.close()
    server = _serve(data, sink)
    try:
        shop = Shop(server.base, session)
        await shop.stock()
        order_id = await shop.order("ada")
        await shop.pay(order_id)
        assert await shop.pending() == 1  # written before the payment was answered
        server.kill()  # SIGKILL: no shutdown, whatever was in flight is cut
        await sink.up()
        assert not sink.caught
        server = _serve(data, sink, port=server.port)
        await eventually(lambda: len(sink.delivered()) == 1, what="the mail after the restart")
        await eventually(lambda: _no_pending(shop), what="the outbox emptied")
        mail = sink.delivered()[0]
        assert mail.to == "ada@example.com" and mail.message["Subject"] == f"Your order {order_id} is confirmed"
        assert LINK.search(mail.text).groups() == (order_id, tracking_token(SECRET, order_id))
        await asyncio.sleep(0.3)
        assert len(sink.caught) == 1
    finally:
        server.stop()


@pytest.mark.parametrize("env, words", [
    ({"LIVECART_SMTP_URL": "http://mail.example"}, "--smtp-url"),
    ({"LIVECART_PUBLIC_URL": "shop.example"}, "--public-url"),
    ({"LIVECART_MAIL_FROM": "not an address"}, "--mail-from"),
    ({"LIVECART_MAILING_RATE": "-1"}, "--mailing-rate"),
])
def test_mail_options_and_their_env_twins_refuse_bad_values(tmp_path, env, words) -> None:
    from click.testing import CliRunner

    from livecart.server.cli import main

    result = CliRunner().invoke(main, ["serve", "--data-dir", str(tmp_path)], env=env)
    assert result.exit_code == 2 and words in result.output, result.output


async def test_serve_killed_mid_delivery_delivers_once_after_restart(tmp_path, session, sink) -> None:
    """Killed with SIGKILL while the SMTP server holds the mail's DATA unanswered: the next process
    finds the attempt's lease when it runs out (2 × --smtp-timeout + 1 s) and delivers the mail."""
    sink.rule = lambda to, nth: "hang" if nth == 1 else "ok"
    data = tmp_path / "data"
    data.mkdir()
    store = open_store("sqlite", data)
    await store.open()
    await profile(store, "ada", "ada@example.com", "Ada")
    await store.close()
    server = _serve(data, sink)
    try:
        shop = Shop(server.base, session)
        await shop.stock()
        order_id = await shop.order("ada")
        await shop.pay(order_id)
        await eventually(lambda: sink.tries("ada@example.com") == 1, what="the attempt in flight")
        server.kill()
        server = _serve(data, sink, port=server.port)
        await eventually(lambda: len(sink.delivered()) == 1, what="the mail after the lease ran out")
        await eventually(lambda: _no_pending(shop), what="the outbox emptied")
        assert sink.delivered()[0].message["Subject"] == f"Your order {order_id} is confirmed"
        assert sink.tries("ada@example.com") == 2
    finally:
        server.stop()
