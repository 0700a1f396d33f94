"""The API docs page, `/api/docs`: Swagger UI (swagger-ui-dist, pinned in clients/js, built into
`server/static/api-docs/` and committed) rendering `/api/openapi.json`, with no CDN."""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from ..errors import ApiError
from ..openapi import STRING, api

DOCS_DIR = Path(__file__).parent.parent / "static" / "api-docs"
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def _file(name: str, content_type: str) -> web.FileResponse:
    path = DOCS_DIR / name
    if not path.is_file():
        raise ApiError(404, "not_built", f"api-docs/{name} is not built: run `npm run build` in clients/js")
    return web.FileResponse(path, headers={**_HEADERS, "Content-Type": content_type})


@api.add("GET", "/api/docs", "This API's documentation page (Swagger UI)", auth=None, media="text/html",
         result=STRING, errors=(404,))
async def api_docs(request: web.Request) -> web.StreamResponse:
    return _file("index.html", "text/html; charset=utf-8")


@api.add("GET", "/api/docs/swagger-ui-bundle.js", "The docs page's script", auth=None, media="text/javascript",
         result=STRING, errors=(404,))
async def api_docs_script(request: web.Request) -> web.StreamResponse:
    return _file("swagger-ui-bundle.js", "text/javascript; charset=utf-8")


@api.add("GET", "/api/docs/swagger-ui.css", "The docs page's stylesheet", auth=None, media="text/css",
         result=STRING, errors=(404,))
async def api_docs_style(request: web.Request) -> web.StreamResponse:
    return _file("swagger-ui.css", "text/css; charset=utf-8")
