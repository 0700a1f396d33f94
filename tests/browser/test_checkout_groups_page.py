"""The cart page's conflict banner and its one-click split (issue 19 #4), and /admin's nudge rules panel
(issue 19 #3), in real headless Chromium against a real `livecart demo`."""
from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from playwright.sync_api import Browser, expect

import screenshots
from flows import shopper, staff
from screenshots import Server, token, watch

pytestmark = pytest.mark.timeout(600)
ARTIFACTS = screenshots.REPO / "test-artifacts" / "checkout-groups"


def call(url: str, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(url + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token('root', 'admin')}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


def test_the_conflict_banner_splits_the_cart_in_one_click(browser: Browser, demo: Server,
                                                          request: pytest.FixtureRequest) -> None:
    url, problems = demo.url, []
    # Candles may not share a checkout with anything else (say, they ship by another carrier).
    call(url, "PUT", "/api/catalog/CANDLE-FIG", {"name": "Fig & cedar candle", "price": 3200, "checkoutGroup": "candles"})
    call(url, "PUT", "/api/checkout-groups/candles", {"combinesWith": []})
    eve = watch(shopper(browser, url, customer="eve"), "shopper", problems)
    try:
        eve.goto(url + "/")
        for sku in ("MUG-CLASSIC", "CANDLE-FIG"):
            eve.click(f".product[data-sku='{sku}'] .add")
            eve.wait_for_selector(f".product[data-sku='{sku}'] .mine:not([hidden])")
        eve.goto(url + "/cart")
        eve.wait_for_selector(".line[data-sku='CANDLE-FIG'] .chip.held")
        eve.wait_for_selector(".line[data-sku='MUG-CLASSIC'] .chip.held")
        banner = eve.locator(".banner.conflict")
        expect(banner).to_have_count(1)
        expect(banner).to_contain_text("Fig & cedar candle (candles) cannot be checked out together with")
        expect(eve.locator(".checkout button.primary")).to_be_disabled()
        expect(eve.locator(".checkout button.primary")).to_contain_text("separately first")
        before = call(url, "GET", "/api/stock?skus=CANDLE-FIG,MUG-CLASSIC")
        eve.click("button.split:has-text('Check these out separately')")
        # The candle went to a cart of its own; this cart has no conflict and may check out.
        eve.wait_for_selector(".banner.split-done")
        expect(eve.locator(".line[data-sku='CANDLE-FIG']")).to_have_count(0)
        expect(eve.locator(".banner.conflict")).to_have_count(0)
        expect(eve.locator(".line[data-sku='MUG-CLASSIC'] .chip.held")).to_have_count(1)
        expect(eve.locator(".checkout button.primary")).to_be_enabled()
        assert call(url, "GET", "/api/stock?skus=CANDLE-FIG,MUG-CLASSIC") == before  # nothing went back to stock
        eve.click(".banner.split-done a:has-text('Open that cart')")
        eve.wait_for_selector(".line[data-sku='CANDLE-FIG'] .chip.held")
        expect(eve.locator(".line[data-sku='MUG-CLASSIC']")).to_have_count(0)
        expect(eve.locator(".banner.conflict")).to_have_count(0)
        assert not problems, problems
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        eve.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        raise


def test_the_admin_adds_a_nudge_rule_and_sees_it_fire(browser: Browser, demo: Server,
                                                      request: pytest.FixtureRequest) -> None:
    url, problems = demo.url, []
    admin = watch(staff(browser, url, "/admin", "root", "admin"), "admin", problems)
    eve = watch(shopper(browser, url, customer="eve"), "shopper", problems)
    try:
        admin.wait_for_selector("#feed-status:text('live')")
        expect(admin.locator("#rules-list")).to_contain_text("No rules yet")
        admin.fill("#rule-id", "nudge")
        admin.select_option("#rule-event", "cart_idle")
        admin.fill("#rule-minutes", "0.005")  # a fraction of a minute: this test's own short rule
        admin.select_option("#rule-action", "offer")
        admin.fill("#rule-percent", "15")
        admin.click("#rule-save")
        expect(admin.locator("#rules-list li.rule[data-rule='nudge']")).to_contain_text("Cart idle for 0.005 min")
        expect(admin.locator("#rules-list li.rule[data-rule='nudge']")).to_contain_text("offer NUDGE: 15% off")
        eve.goto(url + "/")
        eve.click(".product[data-sku='MUG-CLASSIC'] .add")
        eve.wait_for_selector(".product[data-sku='MUG-CLASSIC'] .mine:not([hidden])")
        expect(admin.locator("#rules-fired li[data-rule='nudge']")).to_contain_text("offered NUDGE")
        admin.click("#rules-list li.rule[data-rule='nudge'] button:has-text('Delete')")
        expect(admin.locator("#rules-list")).to_contain_text("No rules yet")
        assert not problems, problems
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        admin.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        raise
