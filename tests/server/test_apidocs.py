"""/api/docs over HTTP: the page and its assets come from the server itself, with their types."""
from __future__ import annotations

import re

from harness import Livecart


async def test_the_docs_page_and_its_assets_are_served_locally(lc: Livecart) -> None:
    async with lc.session.get(lc.base + "/api/docs") as r:
        assert r.status == 200 and r.content_type == "text/html"
        page = await r.text()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert "/api/docs/swagger-ui-bundle.js" in assets and "/api/docs/swagger-ui.css" in assets
    assert not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets  # no CDN
    assert "url: '/api/openapi.json'" in page
    for path, kind in (("/api/docs/swagger-ui-bundle.js", "text/javascript"), ("/api/docs/swagger-ui.css", "text/css")):
        async with lc.session.get(lc.base + path) as r:
            assert r.status == 200 and r.content_type == kind
            assert len(await r.read()) > 10_000
    status, document = await lc.call("GET", "/api/openapi.json")
    assert {"/api/docs", "/api/docs/swagger-ui-bundle.js", "/api/docs/swagger-ui.css"} <= set(document["paths"])
