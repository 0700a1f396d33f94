"""The pages' defects a new user found (issue 19 #5), each in real headless Chromium against a real
`livecart demo` of its own, and the demo sign-in (a demo person, no pasted JWT)."""
from __future__ import annotations

from typing import Iterator

import pytest

from playwright.sync_api import Browser, Page, expect

import screenshots
from flows import WAIT_MS, collect_details, shopper, staff
from screenshots import Server, token, watch

pytestmark = pytest.mark.timeout(600)
ARTIFACTS = screenshots.REPO / "test-artifacts" / "defects"
STAFF_LINKS = "a[href='/admin'], a[href='/assistant'], a[href='/call-centre'], a[href^='/kiosk']"


@pytest.fixture
def problems(browser: Browser, request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """Console errors and page errors of every page a test opens; its pages' screenshots if it fails."""
    found: list[str] = []
    failed_before = request.session.testsfailed
    yield found
    failed = request.session.testsfailed > failed_before  # the call's report is in before teardown
    if failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for i, ctx in enumerate(list(browser.contexts)):
        if failed:
            for j, page in enumerate(ctx.pages):
                page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{i}-{j}.png"), full_page=True)
        ctx.close()
    assert not found, "; ".join(found)


def server(*args: str) -> Iterator[Server]:
    s = Server(list(args))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def demo() -> Iterator[Server]:
    yield from server()


@pytest.fixture
def short_holds() -> Iterator[Server]:
    yield from server("--hold-ttl", "8")


def add_on_storefront(page: Page, url: str, sku: str) -> None:
    page.goto(url + "/")
    page.click(f".product[data-sku='{sku}'] .add")
    page.wait_for_selector(f".product[data-sku='{sku}'] .mine:not([hidden])")


def test_an_expired_hold_shows_not_held_totals_what_is_held_and_blocks_payment(browser: Browser, short_holds: Server,
                                                                             problems: list[str]) -> None:
    url = short_holds.url
    eve = watch(shopper(browser, url), "shopper", problems)
    add_on_storefront(eve, url, "BOOK-COOK")
    eve.goto(url + "/cart")
    eve.wait_for_selector(".line[data-sku='BOOK-COOK'] .chip.held")
    payment = eve.locator("button:has-text('to pay'), button:has-text('Continue to payment')")
    expect(payment).to_be_enabled()
    # The hold runs out (8 s): the line says so, the total is what is still held, payment waits.
    eve.wait_for_selector(".line.is-unheld[data-sku='BOOK-COOK'] .chip.expired", timeout=8_000 + WAIT_MS)
    expect(eve.locator(".totals dt.total")).to_have_text("Total of what is held")
    expect(eve.locator(".totals dd.total")).to_have_text("€0.00")
    expect(eve.locator(".totals .not-held")).to_contain_text("not held")
    expect(eve.locator(".checkout button.primary")).to_be_disabled()
    expect(eve.locator(".checkout button.primary")).to_contain_text("again to pay")
    # Held again: payment opens (checked in one look, before the short hold can run out again).
    eve.click(".line[data-sku='BOOK-COOK'] .chip.expired button")
    eve.wait_for_function("""() => {
        const line = document.querySelector(".line[data-sku='BOOK-COOK']")
        const pay = document.querySelector('.checkout button.primary')
        return line && !line.classList.contains('is-unheld') && line.querySelector('.chip.held')
          && pay && !pay.disabled && pay.textContent.includes('Continue to payment')
          && document.querySelector('.totals dt.total').textContent === 'Total'
    }""")


def test_a_delivered_order_leaves_the_live_board_and_cards_say_1_item(browser: Browser, demo: Server,
                                                                     problems: list[str]) -> None:
    url = demo.url
    admin = watch(staff(browser, url, "/admin", "root", "admin"), "admin", problems)
    admin.wait_for_selector("#feed-status:text('live')")
    expect(admin.locator(".board-empty")).to_contain_text("No open carts right now")  # not a blank card
    eve = watch(shopper(browser, url, customer="eve"), "customer", problems)
    add_on_storefront(eve, url, "BOOK-COOK")
    card = admin.locator(".board-card")
    expect(card).to_have_count(1)
    expect(card.locator(".events")).to_contain_text("1 item ·")
    expect(card.locator(".events")).not_to_contain_text("1 items")
    eve.goto(url + "/cart")
    eve.wait_for_selector(".line .chip.held")
    collect_details(eve, "Eve Online", "eve@example.com")  # payment needs the checkout details
    eve.click("text=Continue to payment")
    eve.click("text=Place order")
    eve.wait_for_selector(".order-card .tag:text('awaiting payment')")
    for button in ("Mark paid", "Dispatch", "Delivered"):
        admin.click(f".order-row button:text('{button}')")
    eve.wait_for_selector(".order-card .tag:text('delivered')")
    expect(admin.locator(".board-card")).to_have_count(0)
    expect(admin.locator(".kpi").first.locator("strong")).to_have_text("0")
    expect(admin.locator(".board-empty")).to_contain_text("No open carts right now")


def test_staff_pages_at_phone_width_have_navigation_and_the_stock_table_fits(browser: Browser, demo: Server,
                                                                           problems: list[str]) -> None:
    ctx = browser.new_context(viewport={"width": 390, "height": 844})
    admin = watch(ctx.new_page(), "admin (phone)", problems)
    admin.goto(f"{demo.url}/admin?token={token('root', 'admin')}")
    admin.wait_for_selector("table.stock tbody tr")
    for label in ("Assistant", "Call centre", "Shop floor"):
        expect(admin.locator(f".topnav a:text('{label}')")).to_be_visible()
    wrap = admin.locator(".table-wrap").bounding_box()
    sale = admin.locator("table.stock tbody tr").first.locator(".adjust button").last
    box = sale.bounding_box()
    assert box and wrap and box["x"] + box["width"] <= min(wrap["x"] + wrap["width"], 390) + 0.5, (box, wrap)
    assert admin.evaluate("(() => { const w = document.querySelector('.table-wrap'); return w.scrollWidth <= w.clientWidth })()")
    # the staff avatar stands out from the top bar
    colours = admin.evaluate("""() => [getComputedStyle(document.querySelector('.account .avatar')).backgroundColor,
                                       getComputedStyle(document.querySelector('.topbar')).backgroundColor]""")
    assert colours[0] != colours[1], colours
    expect(admin.locator(".account .avatar")).to_be_visible()


def test_shopper_pages_and_the_kiosk_do_not_link_staff_pages_and_no_cart_pill_before_a_cart(
        browser: Browser, demo: Server, problems: list[str]) -> None:
    url = demo.url
    page = watch(shopper(browser, url), "shopper", problems)
    page.goto(url + "/")
    page.wait_for_selector(".product .add:not([disabled])")
    expect(page.locator(STAFF_LINKS)).to_have_count(0)
    expect(page.locator(".cart-button")).to_be_hidden()  # no cart yet: no empty pill
    page.click(".product[data-sku='TEA-SENCHA'] .add")
    expect(page.locator(".cart-button")).to_be_visible()
    expect(page.locator(".cart-button .cart-count")).to_have_text("1")
    page.goto(url + "/cart")
    page.wait_for_selector(".line")
    expect(page.locator(STAFF_LINKS)).to_have_count(0)
    kiosk = watch(staff(browser, url, "/kiosk/front-door", "front-door", "kiosk"), "kiosk", problems)
    kiosk.wait_for_selector(".kiosk-card")
    expect(kiosk.locator(STAFF_LINKS)).to_have_count(0)
    expect(kiosk.locator(".topnav")).to_have_count(0)


@pytest.fixture
def kiosk_server() -> Iterator[Server]:
    yield from server("--kiosk-idle", "45")


def test_kiosk_states_the_servers_idle_limit_logs_no_404_and_shows_a_chip_and_who_added(
        browser: Browser, kiosk_server: Server, problems: list[str]) -> None:
    url = kiosk_server.url
    kiosk = watch(staff(browser, url, "/kiosk/front-door", "front-door", "kiosk"), "kiosk", problems)
    failed: list[str] = []
    kiosk.on("console", lambda msg: msg.type == "error" and failed.append(msg.text))
    kiosk.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
    kiosk.reload()  # the listeners see the page start with nobody signed in
    expect(kiosk.locator(".idle-note")).to_contain_text("signed out after 45 seconds")
    assert not failed, failed
    kim = watch(shopper(browser, url, customer="kim"), "customer", problems)
    add_on_storefront(kim, url, "TEA-SENCHA")
    kim.goto(url + "/cart")
    kim.click("text=Use a kiosk")
    code = kim.locator(".big-code").inner_text().strip()
    kiosk.fill(".code-input", code)
    kiosk.click("text=Sign in")
    kiosk.click(".kiosk-product:has-text('Olive oil soap')")
    chip = kiosk.locator(".line[data-sku='SOAP-OLIVE'] .chip.held")
    expect(chip).to_be_visible()
    style = chip.evaluate("(el) => { const s = getComputedStyle(el); const r = el.getBoundingClientRect(); return [s.borderTopStyle, r.height, s.display] }")
    assert style[0] != "dashed" and style[1] < 40 and style[2] == "inline-flex", style
    # Who added it: the customer, at the kiosk (not "front-door via kiosk").
    expect(kiosk.locator(".line[data-sku='SOAP-OLIVE'] .by")).to_have_text("added by kim · kiosk")
    expect(kim.locator(".line[data-sku='SOAP-OLIVE'] .by")).to_have_text("added by you · kiosk")
    admin = watch(staff(browser, url, "/admin", "root", "admin"), "admin", problems)
    admin.fill("#open-cart input", kim.locator(".cart-id code").inner_text())
    admin.click("#open-cart button[type=submit]")
    expect(admin.locator(".line[data-sku='SOAP-OLIVE'] .by")).to_have_text("added by kim · kiosk")
    expect(admin.locator(".line[data-sku='TEA-SENCHA'] .by")).to_have_text("added by kim · web")
    assert not failed, failed


def test_demo_sign_in_picks_a_person_and_a_guest_line_then_shows_the_customers_name(
        browser: Browser, demo: Server, problems: list[str]) -> None:
    url = demo.url
    admin_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    admin = watch(admin_ctx.new_page(), "admin", problems)
    admin.goto(url + "/admin")  # no token: the sign-in card, with the demo people
    admin.click(".demo-person[data-person='admin']")
    admin.wait_for_selector("#feed-status:text('live')")
    expect(admin.locator(".account strong")).to_have_text("root")
    guest = watch(shopper(browser, url), "guest", problems)
    add_on_storefront(guest, url, "CANDLE-FIG")
    guest.goto(url + "/cart")
    guest.wait_for_selector(".line[data-sku='CANDLE-FIG'] .chip.held")
    guest.click("button:has-text('Sign in')")
    guest.click(".demo-person[data-person='customer']")
    expect(guest.locator(".account-head strong")).to_have_text("Signed in as ada")
    guest.wait_for_selector(".line[data-sku='CANDLE-FIG'] .chip.held")
    cart_id = guest.locator(".cart-id code").inner_text()
    expect(guest.locator(".line[data-sku='CANDLE-FIG'] .by")).to_be_hidden()  # her own line, on her own channel
    admin.fill("#open-cart input", cart_id)
    admin.click("#open-cart button[type=submit]")
    expect(admin.locator(".line[data-sku='CANDLE-FIG'] .by")).to_have_text("added by ada · web")  # not "a guest"


# Headless Chromium never hides a tab (bringing another to the front leaves it "visible"), so the test
# makes the Page Visibility API report what a real browser reports when the shopper switches tabs.
SET_VISIBILITY = """(state) => {
    Object.defineProperty(document, 'visibilityState', { value: state, configurable: true })
    Object.defineProperty(document, 'hidden', { value: state === 'hidden', configurable: true })
    document.dispatchEvent(new Event('visibilitychange'))
}"""


def test_the_admin_sees_a_shopper_view_a_product_and_go_away_when_the_tab_is_hidden(
        browser: Browser, demo: Server, problems: list[str]) -> None:
    url = demo.url
    admin = watch(staff(browser, url, "/admin", "root", "admin"), "admin", problems)
    admin.wait_for_selector("#feed-status:text('live')")
    expect(admin.locator("#browsing .browse-empty")).to_be_visible()
    ada = watch(shopper(browser, url, customer="ada"), "ada", problems)
    other = watch(shopper(browser, url), "other shopper", problems)
    for page in (ada, other):
        page.goto(url + "/")
        page.wait_for_selector(".product[data-sku='LAMP-DESK'] .add:not([disabled])")
    ada.click(".product[data-sku='LAMP-DESK'] .product-open")
    expect(ada.locator(".product-detail h2")).to_have_text("Desk lamp, oak")
    row = admin.locator("#browsing .browse-row[data-who='ada']")
    expect(row).to_contain_text("Desk lamp, oak")
    expect(row.locator(".state")).to_have_text("Viewing")
    # "N people are looking at this" is about this product, not every open storefront.
    expect(other.locator(".product[data-sku='LAMP-DESK'] .looking")).to_contain_text("1 person is looking at this")
    expect(other.locator(".product[data-sku='VASE-GLASS'] .looking")).to_be_hidden()
    ada.evaluate(SET_VISIBILITY, "hidden")
    expect(row.locator(".state")).to_have_text("Away")
    expect(other.locator(".product[data-sku='LAMP-DESK'] .looking")).to_be_hidden()  # away is nobody looking
    ada.evaluate(SET_VISIBILITY, "visible")
    expect(row.locator(".state")).to_have_text("Viewing")
    ada.click(".detail-close")
    expect(admin.locator("#browsing .browse-row[data-who='ada']")).to_have_count(0)
