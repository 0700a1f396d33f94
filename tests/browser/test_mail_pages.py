"""Mail in real headless Chromium against a real `livecart demo` (its local mail catcher): the tracking
page from an order mail shows "dispatched" with the carrier link; the admin picks a segment of past
buyers, writes and sends a mailing, watches it finish, and the caught-mail panel shows it."""
from __future__ import annotations

import json
import re
import time
import urllib.request
from typing import Any

import pytest

from playwright.sync_api import Browser

import screenshots
from flows import staff, watch

pytestmark = pytest.mark.timeout(600)
SKU = "MUG-LAST"


def call(url: str, method: str, path: str, token: str, body: Any = None) -> Any:
    request = urllib.request.Request(url + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


def until(check, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_tracking_page_and_a_mailing_from_the_admin_page(browser: Browser) -> None:
    server = screenshots.Server()
    problems: list[str] = []
    try:
        url, admin = server.url, screenshots.token("root", "admin")
        ada = screenshots.token("ada", "customer")
        call(url, "PUT", "/api/customers/ada", ada, {"email": "ada@example.com", "name": "Ada", "marketingConsent": True})
        cart = call(url, "POST", "/api/carts", ada, {"channel": "web"})["cartId"]
        line = call(url, "POST", f"/api/carts/{cart}/lines", ada, {"sku": SKU, "qty": 1})["lineId"]
        until(lambda: call(url, "GET", f"/api/carts/{cart}", ada)["holds"].get(line, {}).get("status") == "held",
              "the line held")
        order_id = call(url, "POST", f"/api/carts/{cart}/checkout", ada)["orderId"]
        call(url, "POST", f"/api/orders/{order_id}/payment", admin, {"status": "paid", "reference": "psp"})
        call(url, "POST", f"/api/orders/{order_id}/status", admin, {"status": "dispatched", "tracking": {
            "carrier": "Parcelforce", "number": "PF1", "url": "https://track.example/PF1"}})

        def mail(subject: str) -> dict | None:
            return next((m for m in call(url, "GET", "/api/mail/caught", admin)["mails"] if m["subject"] == subject),
                        None)
        dispatched = until(lambda: mail(f"Your order {order_id} is on its way"), "the dispatch mail")
        assert dispatched["to"] == ["ada@example.com"]
        link = re.search(r"(http://\S+/orders/\S+\?t=\S+)", dispatched["text"]).group(1)

        page = watch(browser.new_page(), "tracking", problems)
        page.set_default_timeout(30_000)
        page.goto(link)
        page.wait_for_selector("#status:text('dispatched')")
        assert page.get_attribute("#carrier-link", "href") == "https://track.example/PF1"
        assert page.is_visible("#tracking") and "Parcelforce" in page.inner_text("#tracking")
        call(url, "POST", f"/api/orders/{order_id}/status", admin, {"status": "delivered"})
        page.wait_for_selector("#status:text('delivered')")  # live, no reload

        desk = watch(staff(browser, url, "/admin", "root", "admin"), "admin", problems)
        desk.wait_for_selector("#customers-panel")
        desk.fill("#segment-bought", SKU)
        desk.fill("#mailing-subject", "The last mug is back")
        desk.fill("#mailing-text", "We found one more.\n\nCome and see.")
        desk.click("#mailing-send")
        desk.wait_for_selector("#mailing-status[data-state='done']")
        assert "1 of 1 sent" in desk.inner_text("#mailing-status")
        desk.wait_for_selector("#caught-mail summary:has-text('The last mug is back')")
        assert "ada@example.com" in desk.inner_text("#caught-mail")
        assert not problems, problems
    finally:
        for ctx in list(browser.contexts):
            ctx.close()
        server.stop()
