"""Screenshots of every demo page at phone (390×844) and desktop (1280×800) width, in headless
Chromium, with live state in them (carted items, a sold-out item, a second person in the cart).

    .venv/bin/python clients/js/tools/screenshots.py [--out test-artifacts/screenshots] [--only cart,admin]

Starts `tools/serve_demo.py` (the demo server with the pages) on a free port with a temporary
data dir, and writes `<page>-<phone|desktop>.png`. Uses Debian's /usr/bin/chromium
(override with CHROMIUM=/path). Page console errors are printed: they fail the run.
"""
from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import jwt
from playwright.sync_api import Page, sync_playwright

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
SECRET = "livecart-screenshots-secret-of-at-least-32-bytes"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
SIZES = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}


def token(sub: str, role: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "role": role, "iat": now, "exp": now + 3600}, SECRET, algorithm="HS256")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, extra: list[str] | None = None) -> None:
        self.port = free_port()
        self.data = tempfile.TemporaryDirectory(prefix="livecart-shots-")
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECART_")}
        self.log = open(Path(self.data.name) / "server.log", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "serve_demo.py"), "--port", str(self.port), "--data-dir", self.data.name,
             "--jwt-secret", SECRET, "--log-level", "warning", *(extra or [])],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60  # a busy machine starts Python slowly; this only stops a hang
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1)
                return
            except OSError:
                time.sleep(0.2)
        self.log.seek(0)
        raise SystemExit(f"demo server did not start:\n{self.log.read()[-3000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        self.data.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(REPO / "test-artifacts" / "screenshots"))
    parser.add_argument("--only", default="", help="comma-separated page names")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    only = {p for p in args.only.split(",") if p}
    server = Server()
    problems: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            run(browser, server.url, out, only, problems)
            browser.close()
    finally:
        server.stop()
    if problems:
        print("\n".join(problems), file=sys.stderr)
        raise SystemExit(1)


# A feature the server does not have yet answers 404; the pages handle that (and say so), but
# Chromium still logs the failed request. Anything else on the console is a bug.
EXPECTED_404 = re.compile(r"status of 404|Unexpected response code: 404")


def watch(page: Page, name: str, problems: list[str], expected: re.Pattern[str] = EXPECTED_404) -> Page:
    """Records what goes wrong on `page`; `expected`: console errors a scenario provokes on purpose."""
    page.on("pageerror", lambda err: problems.append(f"{name}: page error: {err}"))
    page.on("console", lambda msg: msg.type == "error" and not expected.search(msg.text)
            and not EXPECTED_404.search(msg.text) and problems.append(f"{name}: console: {msg.text}"))
    page.on("response", lambda r: r.status >= 400 and "/static/" in r.url
            and problems.append(f"{name}: {r.status} for {r.url}"))
    return page


def run(browser, url: str, out: Path, only: set[str], problems: list[str]) -> None:
    def want(name: str) -> bool:
        return not only or name in only

    # Shopper A fills a cart (plain items and the personalised invitation); B takes the last mug.
    a = browser.new_context(viewport=SIZES["desktop"])
    pa = watch(a.new_page(), "shopper A", problems)
    pa.goto(url + "/")
    pa.wait_for_selector(".product[data-sku='MUG-CLASSIC'] .add:not([disabled])")
    for sku in ("MUG-CLASSIC", "CANDLE-FIG", "VASE-GLASS"):
        pa.click(f".product[data-sku='{sku}'] .add")
        pa.wait_for_selector(f".product[data-sku='{sku}'] .mine:not([hidden])")
    b = browser.new_context(viewport=SIZES["desktop"])
    pb = watch(b.new_page(), "shopper B", problems)
    pb.goto(url + "/")
    pb.click(".product[data-sku='MUG-LAST'] .add")
    pa.wait_for_selector(".product[data-sku='MUG-LAST'] .badge-sold")
    pa.click(".product[data-sku='INVITE-WEDDING'] .add")
    pa.wait_for_url("**/cart*")
    pa.wait_for_selector(".perso input")
    pa.fill(".perso input >> nth=0", "Ada Lovelace & Charles Babbage")
    pa.fill(".perso input >> nth=1", "Saturday 14 June")
    pa.fill(".perso .entry-form input", "Grace Hopper")
    pa.press(".perso .entry-form input", "Enter")
    pa.fill(".perso .entry-form input", "Alan Turing")
    pa.press(".perso .entry-form input", "Enter")
    state = a.storage_state()

    # A second device of the same shopper, so the cart shows presence.
    c = browser.new_context(viewport=SIZES["phone"], storage_state=state)
    pc = watch(c.new_page(), "shopper A (phone)", problems)
    pc.goto(url + "/cart")
    pc.wait_for_selector(".line")
    pc.focus(".perso textarea")

    # A third shopper looks at one product: the shop floor's "Browsing now" has someone in it.
    d = browser.new_context(viewport=SIZES["desktop"])
    pd = watch(d.new_page(), "shopper D (browsing)", problems)
    pd.goto(url + "/")
    pd.click(".product[data-sku='LAMP-DESK'] .product-open")
    pd.wait_for_selector(".product-detail")

    staff = {
        "assistant": token("sam", "assistant"),
        "operator": token("olivia", "operator"),
        "kiosk": token("front-door", "kiosk"),
        "admin": token("root", "admin"),
    }
    customer_id = pa.evaluate("JSON.parse(localStorage.getItem('livecart.shopper')).customerId")
    cart_id = pa.evaluate("JSON.parse(localStorage.getItem('livecart.cart'))")
    shots = [
        ("storefront", "/", state, ".product", None),
        ("cart", "/cart", state, ".line", None),
        ("assistant", f"/assistant?token={staff['admin']}", None, ".action-card", "walk-in"),
        ("call-centre", f"/call-centre?token={staff['admin']}", None, "#lookup", f"lookup:{customer_id}"),
        ("kiosk", f"/kiosk/front-door?token={staff['kiosk']}", None, ".kiosk-card", None),
        ("kiosk-session", f"/kiosk/front-door?token={staff['kiosk']}", None, ".kiosk-card", "kiosk"),
        ("admin", f"/admin?token={staff['admin']}", None, "table.stock tbody tr", f"open:{cart_id}"),
    ]
    for name, path, storage, ready, action in shots:
        if not want(name):
            continue
        for size, viewport in SIZES.items():
            ctx = browser.new_context(viewport=viewport, storage_state=storage, device_scale_factor=1)
            page = watch(ctx.new_page(), f"{name} ({size})", problems)
            try:
                shoot(page, url, path, ready, action, out / f"{name}-{size}.png", size)
            except Exception as exc:  # one broken page must not hide the others
                problems.append(f"{name} ({size}): {type(exc).__name__}: {str(exc).splitlines()[0]}")
                page.screenshot(path=str(out / f"{name}-{size}-FAILED.png"), full_page=True)
            ctx.close()
    for ctx in (a, b, c, d):
        ctx.close()


def kiosk_code(page: Page, url: str) -> str:
    """A customer's kiosk code, as their phone would get it."""
    res = page.request.post(url + "/api/kiosk-codes", headers={"authorization": f"Bearer {token('kim', 'customer')}"})
    return res.json()["code"]


def shoot(page: Page, url: str, path: str, ready: str, action: str | None, file: Path, size: str) -> None:
    """Opens one page, brings it into a state worth showing, and screenshots it."""
    if action == "kiosk":
        # Each width signs in afresh: a session left from the other width may run out of idle
        # time (4 s in the tests) at any moment while this one is being shot.
        page.request.delete(url + "/api/kiosks/front-door/sessions",
                            headers={"authorization": f"Bearer {token('front-door', 'kiosk')}"})
    page.goto(url + path)
    page.wait_for_selector(ready, timeout=30_000)
    if action == "walk-in":
        page.click("text=Start a walk-in cart")
        page.wait_for_selector(".cartview")
        page.click(".pick:has-text('Merino scarf') button")
        page.click(".pick:has-text('Seasonal cookbook') button")
        page.wait_for_selector(".chip.held")
    elif action and action.startswith("lookup:"):
        page.fill("#lookup input", action.split(":", 1)[1])
        page.click("#lookup button[type=submit]")
        page.wait_for_selector(".cart-list li")
        page.click(".cart-list li button")
        page.wait_for_selector(".line")
    elif action == "kiosk":
        page.fill(".code-input", kiosk_code(page, url))
        page.click("text=Sign in")
        page.wait_for_selector(".kiosk-bar")
        page.click(".kiosk-product:has-text('Sencha green tea')")
        page.click(".kiosk-product:has-text('Olive oil soap')")
        page.wait_for_selector(".line .chip.held")
        page.wait_for_timeout(1500)  # the idle ring moves
    elif action and action.startswith("open:"):
        page.wait_for_selector("#browsing .browse-row")
        page.fill("#open-cart input", action.split(":", 1)[1])
        page.click("#open-cart button[type=submit]")
        page.wait_for_selector(".line")
    page.evaluate("window.scrollTo(0, 0)")  # the sticky top bar belongs at the top
    page.wait_for_timeout(600)  # toasts settle, fonts load
    page.screenshot(path=str(file), full_page=True)
    if size == "phone":  # what a phone shows before scrolling
        page.screenshot(path=str(file.with_name(file.stem + "-top.png")))
    print(f"wrote {file}")


if __name__ == "__main__":
    main()
