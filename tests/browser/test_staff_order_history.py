"""Issue 18 #4: the staff pages' order history is live, as the cart page's is: the call centre sees the
caller's order move on (dispatched with tracking, delivered) and a new order appear, without a reload,
in real headless Chromium against a real `livecart demo`."""
from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from playwright.sync_api import Browser, Page, expect

import screenshots
from flows import collect_details, shopper, staff
from screenshots import Server, token, watch

pytestmark = pytest.mark.timeout(600)
ARTIFACTS = screenshots.REPO / "test-artifacts" / "staff-order-history"


def call(url: str, method: str, path: str, body: Any = None) -> Any:
    """The host platform (an admin token) over the HTTP API."""
    request = urllib.request.Request(url + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token('root', 'admin')}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


def place_order(page: Page, url: str, sku: str) -> str:
    """The signed-in shopper of `page` buys `sku` on the cart page; the order's id."""
    page.goto(url + "/")
    page.click(f".product[data-sku='{sku}'] .add")
    page.wait_for_selector(f".product[data-sku='{sku}'] .mine:not([hidden])")
    page.goto(url + "/cart")
    page.wait_for_selector(".line .chip.held")
    collect_details(page, "Eve Online", "eve@example.com")
    page.click("text=Continue to payment")
    page.click("text=Place order")
    item = page.locator(".order-history .order-item").first
    expect(item).to_have_attribute("data-status", "awaiting_payment")
    return item.get_attribute("data-order") or ""


def test_the_call_centre_sees_the_callers_orders_move_on_without_a_reload(browser: Browser, demo: Server,
                                                                         request: pytest.FixtureRequest) -> None:
    url, problems = demo.url, []
    eve = watch(shopper(browser, url, customer="eve"), "customer", problems)
    otto = watch(staff(browser, url, "/call-centre", "otto", "operator"), "operator", problems)
    try:
        first = place_order(eve, url, "CANDLE-FIG")
        call(url, "POST", f"/api/orders/{first}/payment", {"status": "paid", "reference": "psp-1"})
        otto.fill("#lookup input", "eve")
        otto.click("#lookup button[type=submit]")
        otto.click(".customer-results li[data-customer='eve'] button:text('Open')")
        order = otto.locator(f".order-history .order-item[data-order='{first}']")
        expect(order).to_have_attribute("data-status", "confirmed")
        otto.evaluate("window.__sameDocument = true")  # gone if the page reloads or navigates
        tracking = {"carrier": "DHL", "number": "JD0001", "url": "https://track.example/JD0001"}
        call(url, "POST", f"/api/orders/{first}/status", {"status": "dispatched", "tracking": tracking})
        expect(order).to_have_attribute("data-status", "dispatched")
        expect(order.locator(".order-status")).to_have_text("on its way")
        expect(order.locator("a.order-tracking")).to_contain_text("Track with DHL")
        expect(order.locator("a.order-tracking")).to_have_attribute("href", tracking["url"])
        call(url, "POST", f"/api/orders/{first}/status", {"status": "delivered"})
        expect(order).to_have_attribute("data-status", "delivered")
        expect(order.locator(".order-status")).to_have_text("delivered")
        # a new order of the caller appears on top, and follows its payment
        second = place_order(eve, url, "MUG-CLASSIC")
        newest = otto.locator(".order-history .order-item").first
        expect(newest).to_have_attribute("data-order", second)
        expect(newest).to_have_attribute("data-status", "awaiting_payment")
        call(url, "POST", f"/api/orders/{second}/payment", {"status": "paid", "reference": "psp-2"})
        expect(newest).to_have_attribute("data-status", "confirmed")
        expect(otto.locator(".order-history .order-item")).to_have_count(2)
        assert otto.evaluate("window.__sameDocument === true"), "the call-centre page was reloaded to show it"
        assert not problems, problems
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for name, page in (("operator", otto), ("customer", eve)):
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{name}.png"), full_page=True)
        raise
