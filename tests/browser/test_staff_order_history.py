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


def add_to_cart(page: Page, url: str, sku: str) -> None:
    """The shopper of `page` adds `sku` on the storefront and opens the cart page."""
    page.goto(url + "/")
    page.click(f".product[data-sku='{sku}'] .add")
    page.wait_for_selector(f".product[data-sku='{sku}'] .mine:not([hidden])")
    page.goto(url + "/cart")


def place_order(page: Page, url: str, sku: str) -> str:
    """The signed-in shopper of `page` buys `sku` on the cart page; the order's id."""
    add_to_cart(page, url, sku)
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


def test_the_assistant_sees_the_served_customers_order_dispatched_without_a_reload(
        browser: Browser, demo: Server, request: pytest.FixtureRequest) -> None:
    url, problems = demo.url, []
    eve = watch(shopper(browser, url, customer="eve"), "customer", problems)
    sam = watch(staff(browser, url, "/assistant", "sam", "assistant"), "assistant", problems)
    try:
        bought = place_order(eve, url, "CANDLE-FIG")
        call(url, "POST", f"/api/orders/{bought}/payment", {"status": "paid", "reference": "psp-1"})
        # In the shop: the assistant starts a walk-in cart, Eve claims it and is served in her own cart.
        sam.click("text=Start a walk-in cart")
        sam.click(".pick:has-text('Merino scarf') button")
        sam.wait_for_selector(".line[data-sku='SCARF-MERINO'] .chip.held")
        sam.click("text=Show code for the customer")
        code = sam.locator(".big-code").inner_text().strip()
        eve.goto(f"{url}/cart?invite={code}")
        eve.wait_for_selector(".line[data-sku='SCARF-MERINO'] .chip.held")
        sam.wait_for_selector("h2:has-text('Customer’s cart')")
        order = sam.locator(f".order-history .order-item[data-order='{bought}']")
        expect(order).to_have_attribute("data-status", "confirmed")
        sam.evaluate("window.__sameDocument = true")
        call(url, "POST", f"/api/orders/{bought}/status",
             {"status": "dispatched", "tracking": {"carrier": "DPD", "number": "15501", "url": "https://track.example/15501"}})
        expect(order).to_have_attribute("data-status", "dispatched")
        expect(order.locator("a.order-tracking")).to_contain_text("Track with DPD")
        call(url, "POST", f"/api/orders/{bought}/status", {"status": "delivered"})
        expect(order).to_have_attribute("data-status", "delivered")
        assert sam.evaluate("window.__sameDocument === true"), "the assistant page was reloaded to show it"
        assert not problems, problems
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for name, page in (("assistant", sam), ("customer", eve)):
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{name}.png"), full_page=True)
        raise


def test_the_kiosk_shows_the_signed_in_customers_orders_move_on_without_a_reload(
        browser: Browser, demo: Server, request: pytest.FixtureRequest) -> None:
    url, problems = demo.url, []
    eve = watch(shopper(browser, url, customer="eve"), "customer", problems)
    kiosk = watch(staff(browser, url, "/kiosk/front-door", "front-door", "kiosk"), "kiosk", problems)
    try:
        bought = place_order(eve, url, "CANDLE-FIG")
        call(url, "POST", f"/api/orders/{bought}/payment", {"status": "paid", "reference": "psp-1"})
        # Eve comes into the shop with a new cart and signs in at the kiosk with her phone's code.
        add_to_cart(eve, url, "TEA-SENCHA")
        eve.click("text=Use a kiosk")
        kiosk.fill(".code-input", eve.locator(".big-code").inner_text().strip())
        kiosk.click("text=Sign in")
        order = kiosk.locator(f".order-history .order-item[data-order='{bought}']")
        expect(order).to_have_attribute("data-status", "confirmed")
        kiosk.evaluate("window.__sameDocument = true")
        call(url, "POST", f"/api/orders/{bought}/status",
             {"status": "dispatched", "tracking": {"carrier": "UPS", "number": "1Z99", "url": "https://track.example/1Z99"}})
        expect(order).to_have_attribute("data-status", "dispatched")
        expect(order.locator("a.order-tracking")).to_contain_text("Track with UPS")
        assert kiosk.evaluate("window.__sameDocument === true"), "the kiosk page was reloaded to show it"
        assert not problems, problems
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for name, page in (("kiosk", kiosk), ("customer", eve)):
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{name}.png"), full_page=True)
        raise
