"""The aiohttp application factory: config in, app out; store, catalog and rooms live on the app."""
from __future__ import annotations

from typing import AsyncIterator

from aiohttp import web

from .api import api
from .appkeys import CATALOG, CONFIG, ROOMS, STORE
from .catalog import CatalogCache
from .config import Config
from .errors import json_errors
from .rooms import Rooms, cart_socket
from .store import open_store


def create_app(config: Config) -> web.Application:
    if not config.jwt_secret:
        raise ValueError("config.jwt_secret is empty")
    app = web.Application(middlewares=[json_errors], client_max_size=config.max_message_bytes)
    app[CONFIG] = config
    app.add_routes(api.routes)
    app.router.add_get("/ws/carts/{cartId}", cart_socket)
    app.cleanup_ctx.append(_services)
    return app


async def _services(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    store = open_store(config.store, config.data_dir)
    await store.open()
    catalog = CatalogCache(store)
    await catalog.load()
    app[STORE], app[CATALOG] = store, catalog
    app[ROOMS] = rooms = Rooms(config, store, catalog)
    yield
    await rooms.close()
    await store.close()
