"""Chat on the cart in real headless Chromium (two contexts) against a real `livecart demo`: the shopper
writes on /cart, the admin sees the message on the shop floor with its cart (unread, typing), opens it
and answers, and the shopper sees the answer."""
from __future__ import annotations


import pytest

from playwright.sync_api import Browser, expect

import screenshots
from flows import shopper, staff
from screenshots import Server, watch

pytestmark = pytest.mark.timeout(600)
ARTIFACTS = screenshots.REPO / "test-artifacts" / "chat"


def test_the_shopper_writes_the_admin_sees_it_with_the_cart_and_answers(browser: Browser, demo: Server,
                                                                        request: pytest.FixtureRequest) -> None:
    url = demo.url
    problems: list[str] = []
    failed_before = request.session.testsfailed
    try:
        eve = watch(shopper(browser, url, customer="eve"), "shopper", problems)
        eve.goto(url + "/cart")
        box = eve.locator(".chat-card input[name='message']")
        expect(box).to_be_enabled()
        cart_id = eve.evaluate("JSON.parse(localStorage.getItem('livecart.cart'))")
        assert isinstance(cart_id, str) and cart_id, cart_id
        admin = watch(staff(browser, url, "/admin", "root", "admin"), "admin", problems)
        expect(admin.locator("#feed-status")).to_have_text("live")

        box.fill("Is the")  # typing shows on the shop floor, with the cart
        expect(admin.locator(f".board-card[data-cart='{cart_id}'] .chat-typing")).to_be_visible()
        box.fill("Is the cookbook signed?")
        box.press("Enter")
        expect(eve.locator(".chat-msg.mine .chat-text")).to_have_text(["Is the cookbook signed?"])

        card = admin.locator(".board-card", has=admin.locator(".chat-unread"))
        expect(card).to_have_count(1)
        expect(card.locator(".chat-unread")).to_contain_text("1 unread")
        expect(card).to_have_attribute("data-cart", cart_id)
        card.click()
        reply = admin.locator("#open-cart .chat-card input[name='message']")
        expect(admin.locator("#open-cart .chat-msg.theirs .chat-text")).to_have_text(["Is the cookbook signed?"])
        expect(card.locator(".chat-unread")).to_have_count(0)  # read: the admin has the cart open
        reply.fill("Yes, by the author.")
        expect(eve.locator(".chat-typing")).to_contain_text("typing")  # the shopper sees staff typing
        reply.press("Enter")

        expect(eve.locator(".chat-msg.staff .chat-text")).to_have_text(["Yes, by the author."])
        expect(eve.locator(".chat-msg .chat-text")).to_have_text(["Is the cookbook signed?", "Yes, by the author."])
        expect(admin.locator("#open-cart .chat-msg.mine .chat-text")).to_have_text(["Yes, by the author."])
        assert not problems, "; ".join(problems)
    finally:
        failed = request.session.testsfailed > failed_before or problems
        for i, ctx in enumerate(list(browser.contexts)):
            if failed:
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                for j, page in enumerate(ctx.pages):
                    page.screenshot(path=str(ARTIFACTS / f"chat-{i}-{j}.png"), full_page=True)
            ctx.close()
