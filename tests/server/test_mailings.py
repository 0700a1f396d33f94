"""Mailings to a segment over real SMTP (aiosmtpd): consent, one-click unsubscribe, pace, progress, restarts."""
from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness import SECRET, Livecart
from livecart.server import auth
from livecart.server.services import SERVICES
from livecart.server.order_records import purchase
from livecart.server.store import open_store
from livecart.server.store.index import open_index
from processes import ServerProcess
from smtp_sink import Sink
from test_mail import ADMIN, Shop, mailing_config, profile
from yclient import eventually

SECRET_LINK = re.compile(r"<(https?://[^>]+/unsubscribe\?t=[^>]+)>")


@pytest.fixture
async def sink():
    s = await Sink().start()
    yield s
    await s.close()


def mailing_mail(sink: Sink, mailing_id: str) -> list:
    return [c for c in sink.delivered() if c.message["X-Livecart-Mailing"] == mailing_id]


async def seed_buyers(store: Any, count: int, sku: str = "MUG", at: int | None = None) -> list[str]:
    """`count` customers with a paid order of `sku`, marketing consent and an email (straight into the store and its index)."""
    at = at or int(time.time() * 1000)
    index = open_index(store)
    await index.open()
    customers = []
    for n in range(count):
        customer = f"buyer-{sku.lower()}-{n}"
        order_id = f"o-seed-{sku.lower()}-{n}"
        order = {
            "id": order_id, "cartId": f"c-{n}", "customerId": customer, "state": "confirmed", "currency": "EUR",
            "lines": [{"lineId": "l1", "sku": sku, "qty": 1, "unitPrice": 500, "total": 500}], "total": 500,
            "createdAt": at, "history": [{"state": "confirmed", "at": at, "by": "seed"}]}
        await store.put_record("order", order_id, order)
        await index.put_order(order)
        await index.add_purchase(purchase(order, lambda sku: None))
        await profile(store, customer, f"{customer}@example.com", f"Buyer {n}", consent=True)
        customers.append(customer)
    return customers


async def test_a_mailing_reaches_the_consenting_buyers_once_and_one_click_unsubscribes(
        tmp_path, session, sink) -> None:
    lc = await Livecart(mailing_config(tmp_path, sink, public_url="https://shop.example", mailing_rate=0),
                        session).start()
    try:
        shop, store = Shop(lc.base, session), lc.app[SERVICES].store
        await shop.stock("MUG")
        await shop.stock("TEE")
        for customer, consent, email in (("ada", True, "ada@example.com"), ("bob", True, "bob@example.com"),
                                         ("cy", False, "cy@example.com"), ("dee", True, "")):
            await profile(store, customer, email, customer.title(), consent=consent)
            await shop.pay(await shop.order(customer, "MUG"))
        await profile(store, "tim", "tim@example.com", "Tim", consent=True)
        await shop.pay(await shop.order("tim", "TEE"))
        body = {"subject": "The last mugs", "text": "Only a few left.\n\nCome and see.",
                "segment": {"bought": ["MUG"], "since": "2020-06-01"}}
        answer = await shop.ok(202, "POST", "/api/mailings", json=body)
        assert answer["recipients"] == 2  # ada and bob: cy gave no consent, dee no email, tim bought a tee
        mailing_id = answer["mailingId"]

        async def done() -> bool:
            progress = await shop.ok(200, "GET", f"/api/mailings/{mailing_id}")
            return progress["status"] == "done"
        await eventually(done, what="the mailing done")
        progress = await shop.ok(200, "GET", f"/api/mailings/{mailing_id}")
        assert (progress["total"], progress["sent"], progress["failed"]) == (2, 2, 0)
        mails = mailing_mail(sink, mailing_id)
        assert sorted(m.to for m in mails) == ["ada@example.com", "bob@example.com"]
        for mail in mails:
            assert mail.message["Subject"] == "The last mugs" and "Only a few left." in mail.text
            assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert "<p>Come and see.</p>" in mail.html
        ada = next(m for m in mails if m.to == "ada@example.com")
        link = SECRET_LINK.search(str(ada.message["List-Unsubscribe"])).group(1)
        assert link.startswith("https://shop.example/unsubscribe?t=") and link in ada.text
        path = link.removeprefix("https://shop.example")
        assert (await shop.call("GET", path, None))[0] == 200  # a page; following a link changes nothing
        assert (await lc.app[SERVICES].index.get_customer("ada"))["marketingConsent"] is True
        # RFC 8058: the mail client POSTs List-Unsubscribe=One-Click, no sign-in, no cookies
        status, _ = await shop.call("POST", path, None, data="List-Unsubscribe=One-Click",
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200
        assert (await lc.app[SERVICES].index.get_customer("ada"))["marketingConsent"] is False
        assert (await shop.call("POST", path[:-2] + "xx", None))[0] == 404
        again = await shop.ok(202, "POST", "/api/mailings", json=body)
        assert again["recipients"] == 1  # bob only now
        everyone = await shop.ok(202, "POST", "/api/mailings", json={**body, "segment": {}})
        assert everyone["recipients"] == 2  # bob and tim: past buyers with consent and an email
        named = await shop.ok(202, "POST", "/api/mailings", json={**body, "segment": {"q": "TIM@EXAMPLE"}})
        assert named["recipients"] == 1
    finally:
        await lc.stop()


async def test_consent_given_on_the_profile_reaches_mailings_and_an_unsubscribe_shows_in_customer_search(
        tmp_path, session, sink) -> None:
    """A mailing's segment is a customer search: a buyer who agrees to marketing mail through
    `PUT /api/customers/{id}` is mailed, and the one-click unsubscribe is what the search then shows."""
    lc = await Livecart(mailing_config(tmp_path, sink, public_url="https://shop.example", mailing_rate=0),
                        session).start()
    try:
        shop = Shop(lc.base, session)
        await shop.stock("MUG")
        await shop.pay(await shop.order("ada", "MUG"))
        body = {"subject": "New mugs", "text": "Fresh from the kiln.", "segment": {"q": "lovelace", "bought": ["MUG"]}}
        status, refused = await shop.call("POST", "/api/mailings", json=body)
        assert (status, refused["error"]["code"]) == (400, "no_recipients")  # no consent, no email yet
        ada = auth.mint(SECRET, "ada", "customer")
        await shop.ok(200, "PUT", "/api/customers/ada", ada,
                      json={"name": "Ada Lovelace", "email": "ada@example.com", "marketingConsent": True})
        answer = await shop.ok(202, "POST", "/api/mailings", json=body)
        assert answer["recipients"] == 1
        await eventually(lambda: len(mailing_mail(sink, answer["mailingId"])) == 1, what="the mail")
        mail = mailing_mail(sink, answer["mailingId"])[0]
        assert mail.to == "ada@example.com"
        path = SECRET_LINK.search(str(mail.message["List-Unsubscribe"])).group(1).removeprefix("https://shop.example")
        status, _ = await shop.call("POST", path, None, data="List-Unsubscribe=One-Click",
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200
        found = (await shop.ok(200, "GET", "/api/customers?q=lovelace"))["customers"]
        assert [(c["id"], c["marketingConsent"]) for c in found] == [("ada", False)]
        assert (await shop.call("POST", "/api/mailings", json=body))[0] == 400
    finally:
        await lc.stop()


async def test_mailing_bad_input_gets_clear_errors(lc: Livecart, session) -> None:
    shop = Shop(lc.base, session)
    good = {"subject": "Hello", "text": "News", "segment": {"bought": ["MUG"]}}
    cases = [({**good, "segment": {"boughtt": ["MUG"]}}, "bad_segment", "boughtt"),
             ({**good, "segment": {"since": "June"}}, "bad_segment", "since"),
             ({**good, "segment": {"bought": [1]}}, "bad_segment", "bought"),
             ({**good, "segment": "everyone"}, "bad_segment", "object"),
             ({**good, "subject": ""}, "bad_subject", "subject"),
             ({**good, "subject": "a\nBcc: x@example.com"}, "bad_subject", "one line"),
             ({**good, "text": 5}, "bad_text", "text"),
             (good, "no_recipients", "nobody")]  # nobody bought anything here yet
    for body, code, words in cases:
        status, answer = await shop.call("POST", "/api/mailings", json=body)
        assert status == 400 and answer["error"]["code"] == code, (body, answer)
        assert words in answer["error"]["message"], answer
    status, answer = await shop.call("POST", "/api/mailings", auth.mint(lc.config.jwt_secret, "ada", "customer"),
                                     json=good)
    assert status == 403
    assert (await shop.call("GET", "/api/mailings/m-nope"))[0] == 404
    assert (await shop.call("POST", "/api/mailings", ADMIN, data="{"))[0] == 400


async def test_a_mailing_killed_midway_resumes_after_restart_and_mails_nobody_twice(tmp_path, session, sink) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = open_store("sqlite", data)
    await store.open()
    customers = await seed_buyers(store, 40)
    await store.close()

    def serve(port: int | None = None) -> ServerProcess:
        # A generous SMTP timeout: an answer later than it is a timeout, and the retry a second copy
        # (SMTP is at least once); this test is about the restart, not a busy machine's slow sink.
        return ServerProcess(data, "--smtp-url", sink.url, "--smtp-timeout", "10", "--mail-retry-base", "0.1",
                             "--mailing-rate", "20", port=port).start()
    server = serve()
    try:
        shop = Shop(server.base, session)
        mailing_id = (await shop.ok(202, "POST", "/api/mailings", json={
            "subject": "Mugs", "text": "New mugs", "segment": {"bought": "MUG"}}))["mailingId"]
        await eventually(lambda: len(sink.delivered()) >= 10, what="a quarter of the mailing")
        await sink.down()  # from here nothing is accepted: every mail accepted so far gets its record

        async def recorded() -> bool:
            return (await shop.ok(200, "GET", f"/api/mailings/{mailing_id}"))["sent"] == len(sink.delivered())
        await eventually(recorded, what="each accepted mail recorded as sent")
        sent_before = len(sink.delivered())
        assert sent_before < 40
        server.kill()  # SIGKILL midway
        await sink.up()
        server = serve(port=server.port)

        async def done() -> bool:
            return (await shop.ok(200, "GET", f"/api/mailings/{mailing_id}"))["status"] == "done"
        await eventually(done, timeout=60, what="the mailing finished after the restart")
        progress = await shop.ok(200, "GET", f"/api/mailings/{mailing_id}")
        assert (progress["total"], progress["sent"], progress["failed"]) == (40, 40, 0)
        got = sorted(m.to for m in sink.delivered())
        assert got == sorted(f"{c}@example.com" for c in customers)  # everyone, nobody twice
    finally:
        server.stop()


async def test_mailings_keep_their_pace(tmp_path, session, sink) -> None:
    """At most `mailing_rate` mails a second (plus a one-second burst), whatever the SMTP server takes."""
    lc = await Livecart(mailing_config(tmp_path, sink, mailing_rate=10), session).start()
    try:
        await seed_buyers(lc.app[SERVICES].store, 25)
        shop = Shop(lc.base, session)
        seen: list[dict] = []
        subscribed = asyncio.Event()

        async def admin_feed() -> None:
            async with session.get(f"{lc.base}/api/admin/events?token={ADMIN}") as resp:
                subscribed.set()
                async for raw in resp.content:
                    if raw.startswith(b"data:"):
                        seen.append(json.loads(raw[5:]))
        feed = asyncio.ensure_future(admin_feed())
        await asyncio.wait_for(subscribed.wait(), 30)
        started = time.monotonic()
        mailing_id = (await shop.ok(202, "POST", "/api/mailings", json={
            "subject": "Mugs", "text": "New mugs", "segment": {"bought": ["MUG"]}}))["mailingId"]
        await eventually(lambda: len(mailing_mail(sink, mailing_id)) == 25, what="all 25")
        # 25 mails at 10/s cannot take less than 1.5 s (after a burst of 10): a floor, not a budget
        assert time.monotonic() - started >= 1.4
        # the shop floor watched it move, up to done
        await eventually(lambda: any(e["type"] == "mailing.progress" and e["status"] == "done" for e in seen),
                         what="mailing.progress done on the admin feed")
        moves = [e for e in seen if e["type"] == "mailing.progress" and e["mailingId"] == mailing_id]
        assert moves[-1]["sent"] == moves[-1]["total"] == 25 and len(moves) >= 2
        assert [e["sent"] for e in moves] == sorted(e["sent"] for e in moves)
        feed.cancel()
    finally:
        await lc.stop()




async def _cli(*args: str, stdin: bytes = b"") -> tuple[int, str]:
    exe = Path(sys.executable).parent / "livecart"
    proc = await asyncio.create_subprocess_exec(str(exe), "mailing", *args, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate(stdin)
    return proc.returncode or 0, out.decode()


async def test_the_mailing_command_sends_and_shows_progress(tmp_path, session, sink) -> None:
    lc = await Livecart(mailing_config(tmp_path, sink, mailing_rate=0), session).start()
    try:
        await seed_buyers(lc.app[SERVICES].store, 5)
        common = ("--url", lc.base, "--jwt-secret", lc.config.jwt_secret)
        code, out = await _cli(*common, "--subject", "Mugs", "--text", "-", "--bought", "MUG", stdin=b"New mugs\n")
        assert code == 0, out
        assert "to 5 customers" in out and "done: 5 sent, 0 failed" in out and "sending" in out  # the bar
        assert len(sink.delivered()) == 5 and "New mugs" in sink.delivered()[0].text
        code, out = await _cli(*common, "--subject", "Mugs", "--text", "-", "--since", "June", stdin=b"x")
        assert code == 1 and "400: since is a date" in out, out
        code, out = await _cli(*common, "--subject", "Mugs", "--text", "-", "--bought", "TEE", stdin=b"x")
        assert code == 1 and "400: nobody in this segment" in out, out
    finally:
        await lc.stop()


async def test_two_processes_on_one_redis_store_share_a_mailing_and_mail_nobody_twice(
        tmp_path, session, sink, redis_server) -> None:
    shared = {"store": redis_server.url, "bus": redis_server.url, "mailing_rate": 0}
    a = await Livecart(mailing_config(tmp_path / "a", sink, **shared), session).start()
    b = await Livecart(mailing_config(tmp_path / "b", sink, **shared), session).start()
    try:
        customers = await seed_buyers(a.app[SERVICES].store, 60)
        mailing_id = (await Shop(a.base, session).ok(202, "POST", "/api/mailings", json={
            "subject": "Mugs", "text": "New mugs", "segment": {"bought": ["MUG"]}}))["mailingId"]

        async def done() -> bool:  # asked of the other process: progress is kept in the shared store
            return (await Shop(b.base, session).ok(200, "GET", f"/api/mailings/{mailing_id}"))["status"] == "done"
        await eventually(done, what="the mailing done")
        assert sorted(m.to for m in sink.delivered()) == sorted(f"{c}@example.com" for c in customers)
    finally:
        await a.stop()
        await b.stop()
