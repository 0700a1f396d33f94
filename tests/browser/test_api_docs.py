"""/api/docs in real headless Chromium (Debian's) against a real `livecart serve`: Swagger UI renders every
documented route from /api/openapi.json, with nothing fetched from anywhere but the server."""
from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import sync_playwright  # noqa: E402

from processes import ServerProcess  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data").start()
    yield proc
    proc.stop()


def test_the_docs_page_renders_every_route_without_a_cdn(server: ServerProcess) -> None:
    with urllib.request.urlopen(server.base + "/api/openapi.json", timeout=30) as r:
        document = json.loads(r.read())
    operations = sum(len(ops) for ops in document["paths"].values())
    requested: list[str] = []
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server.base + "/api/docs")
            page.wait_for_function(f"document.querySelectorAll('.opblock').length >= {operations}", timeout=60_000)
            assert page.locator(".opblock").count() == operations
            assert page.get_by_text("/api/carts/{cartId}/checkout", exact=True).count() >= 1
            assert "livecart" in page.locator(".info .title").inner_text()
        finally:
            browser.close()
    assert not errors, errors
    foreign = [url for url in requested if not url.startswith((server.base, "data:"))]
    assert not foreign, f"the docs page fetched from elsewhere: {foreign}"
    assert server.base + "/api/openapi.json" in requested
