"""The demo pages in real headless Chromium (Debian's), against a real `livecart demo`: issue 8's scenarios,
and a screenshot of every page at phone and desktop width kept under test-artifacts/.

Each test has a demo server of its own: a scenario that holds the last unit of a SKU, places an
order or signs a kiosk in must not change what the next test sees (one shared server did: a
failed `sold` left its hold, and the screenshots then could not take the last mug)."""
from __future__ import annotations

import shutil
from typing import Callable, Iterator

import pytest

from playwright.sync_api import Browser

import flows
import screenshots

ARTIFACTS = screenshots.REPO / "test-artifacts"
# Chromium on a busy 2-core machine: a full set of screenshots took 203 s under load 18. The
# project-wide 240 s per test is a hang stopper; here a hang is told from slowness at 600 s.
pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def demo() -> Iterator[str]:
    """A fresh `livecart demo` for this test alone."""
    server = screenshots.Server()
    yield server.url
    server.stop()


def run_scenario(browser: Browser, url: str, scenario: Callable[..., None], name: str) -> None:
    problems: list[str] = []
    try:
        scenario(browser, url, problems)
        assert not problems, "; ".join(problems)
    except BaseException:
        out = ARTIFACTS / "flows"
        out.mkdir(parents=True, exist_ok=True)
        for i, ctx in enumerate(browser.contexts):
            for j, page in enumerate(ctx.pages):
                page.screenshot(path=str(out / f"{name}-{i}-{j}.png"), full_page=True)
        raise
    finally:
        for ctx in list(browser.contexts):
            ctx.close()


@pytest.mark.parametrize("name", list(flows.SCENARIOS))
def test_scenario(browser: Browser, name: str) -> None:
    """sold: the last unit shows sold on another storefront without a refresh, and back when removed;
    merge: assistant and customer co-edit, the walk-in merges and the assistant follows;
    typing: personalisation appears character by character in the admin's view;
    kiosk: idle sign-out clears the screen and the kiosk can no longer open the cart;
    order: the admin is told of the carted item, dispatches, the customer sees the new status;
    details: the shopper fills the details over two visits while the operator completes the address live;
    history: the order appears in the cart page's history and follows the admin's dispatch live;
    favourites: a heart on the storefront shows among the customer's favourites in the call centre."""
    server = flows.demo_server(name)  # its own, with the scenario's options (the kiosk's idle time)
    try:
        run_scenario(browser, server.url, flows.SCENARIOS[name], name)
    finally:
        server.stop()


def test_every_page_at_phone_and_desktop_width(browser: Browser, demo: str) -> None:
    out = ARTIFACTS / "screenshots"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    problems: list[str] = []
    try:
        screenshots.run(browser, demo, out, set(), problems)
    finally:
        for ctx in list(browser.contexts):  # what a failed run left open is no later test's
            ctx.close()
    assert not problems, "; ".join(problems)
    pages = {"storefront", "cart", "assistant", "call-centre", "kiosk", "kiosk-session", "admin"}
    for page in pages:
        for size in ("phone", "desktop"):
            shot = out / f"{page}-{size}.png"
            assert shot.exists() and shot.stat().st_size > 10_000, shot
