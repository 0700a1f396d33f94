"""The demo pages in real headless Chromium (Debian's), against a real `livecart demo`: issue 8's scenarios,
and a screenshot of every page at phone and desktop width kept under test-artifacts/."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "clients" / "js" / "tools"
sys.path.insert(0, str(TOOLS))

from playwright.sync_api import Browser, sync_playwright  # noqa: E402

import flows  # noqa: E402
import screenshots  # noqa: E402

ARTIFACTS = screenshots.REPO / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(screenshots.CHROMIUM).exists():
        pytest.fail(f"{screenshots.CHROMIUM} is missing (make test installs Debian's chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=screenshots.CHROMIUM, args=screenshots.ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    server = screenshots.Server(["--kiosk-idle", "4"])
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
def test_scenario(browser: Browser, demo: str, name: str) -> None:
    """sold: the last unit shows sold on another storefront within 1 s, and back when removed;
    merge: assistant and customer co-edit, the walk-in merges and the assistant follows;
    typing: personalisation appears character by character in the admin's view;
    kiosk: idle sign-out clears the screen and the kiosk can no longer open the cart;
    order: the admin is told of the carted item, dispatches, the customer sees the new status."""
    run_scenario(browser, demo, flows.SCENARIOS[name], name)


def test_every_page_at_phone_and_desktop_width(browser: Browser, demo: str) -> None:
    out = ARTIFACTS / "screenshots"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    problems: list[str] = []
    screenshots.run(browser, demo, out, set(), problems)
    assert not problems, "; ".join(problems)
    pages = {"storefront", "cart", "assistant", "call-centre", "kiosk", "kiosk-session", "admin"}
    for page in pages:
        for size in ("phone", "desktop"):
            shot = out / f"{page}-{size}.png"
            assert shot.exists() and shot.stat().st_size > 10_000, shot
