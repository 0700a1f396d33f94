"""The demo pages (storefront, cart, assistant, call centre, kiosk, admin) and the client bundle.

Everything here is built by `clients/js/build.mjs` into `server/static/` and committed, so the
server needs no Node. `add_page_routes(app)` is called by the app factory when `config.demo`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATIC_DIR = Path(__file__).parent / "static"

# route → page file in STATIC_DIR
PAGES = {
    "/": "storefront.html",
    "/cart": "cart.html",
    "/assistant": "assistant.html",
    "/call-centre": "call-centre.html",
    "/kiosk/{kioskId}": "kiosk.html",
    "/admin": "admin.html",
}

# The pages are small and change with each build: always revalidate (ETag / Last-Modified).
_PAGE_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
                 "Referrer-Policy": "same-origin"}

_ADDED: web.AppKey[bool] = web.AppKey("livecart_pages_added", bool)


def _page(name: str) -> Handler:
    path = STATIC_DIR / name

    async def handler(request: web.Request) -> web.StreamResponse:
        if not path.is_file():
            raise web.HTTPNotFound(reason=f"{name} is not built: run `npm run build` in clients/js")
        return web.FileResponse(path, headers=_PAGE_HEADERS)

    handler.__name__ = f"page_{path.stem.replace('-', '_')}"
    return handler


async def _kiosk_without_id(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/kiosk/front-door")


@web.middleware
async def _static_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-cache")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def add_page_routes(app: web.Application) -> None:
    """Serves the demo pages and `/static/` (the built bundle). Safe to call once per app."""
    if app.get(_ADDED):
        return
    app[_ADDED] = True
    for route, name in PAGES.items():
        app.router.add_get(route, _page(name), name=f"page-{name.removesuffix('.html')}")
    app.router.add_get("/kiosk", _kiosk_without_id)
    app.router.add_get("/kiosk/", _kiosk_without_id)
    if STATIC_DIR.is_dir():
        app.router.add_static("/static/", STATIC_DIR, name="static", append_version=False)
    app.middlewares.append(_static_headers)
