"""The aiohttp application factory: config in, app out; store, catalog and rooms live on the app."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator, cast

from aiohttp import web

from . import (  # noqa: F401 (importing a module registers its routes)
    api as _api, carts as _carts, catalog as _catalog, checkout as _checkout, customers as _customers,
    invites as _invites,
)
from . import kiosks, orders, webhooks
from .routes import customers as _customer_routes, orders as _order_routes  # noqa: F401 (registers routes)
from .appkeys import CATALOG, CONFIG, DISCOUNTS, EVENTS, FEEDS, INDEX, ROOMS, STOCK, STORE
from .catalog import CatalogCache
from .openapi import api
from .pages import add_page_routes
from .config import Config
from .demo import load_demo
from .errors import json_errors
from .checkout import DiscountBook
from .feeds import EventFeed, StockFeed, admin_socket, me_socket, stock_socket
from .rooms import Rooms, cart_socket
from .bus import open_bus
from .stock import StockActor, StockAuthority
from .store import Store, StockLog, is_embedded, open_store
from .store.index import open_index


def create_app(config: Config) -> web.Application:
    if not config.jwt_secret:
        raise ValueError("config.jwt_secret is empty")
    app = web.Application(middlewares=[json_errors], client_max_size=config.max_message_bytes)
    app[CONFIG] = config
    app.add_routes(api.routes)
    app.router.add_get("/ws/carts/{cartId}", cart_socket)
    app.router.add_get("/ws/stock", stock_socket)
    app.router.add_get("/ws/admin", admin_socket)
    app.router.add_get("/ws/me", me_socket)
    app.cleanup_ctx.append(_services)
    app.cleanup_ctx.append(kiosks.idle_sweeper)
    app.cleanup_ctx.append(webhooks.webhook_worker)
    app.on_shutdown.append(_close_connections)
    if config.demo:
        add_page_routes(app)
    return app


async def _close_connections(app: web.Application) -> None:
    # on_shutdown runs before aiohttp waits for open handlers: long-lived sockets end here.
    app[FEEDS].close()
    app[EVENTS].close()
    app[ROOMS].close_connections()


async def _services(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    store = open_store(config.store, config.data_dir, config.fsync)
    await store.open()
    catalog = CatalogCache(store)
    await catalog.load()
    app[STORE], app[CATALOG] = store, catalog
    app[INDEX] = open_index(store)
    await app[INDEX].open()
    await orders.backfill(store, app[INDEX], lambda sku: getattr(catalog.get(sku), "category", None))
    stock = open_stock(config, store)
    bus = open_bus(config.bus)
    feeds, events, discounts = StockFeed(stock.levels), EventFeed(), DiscountBook(store)
    await discounts.load()
    bus.on_event("discounts", lambda e: asyncio.ensure_future(discounts.load(e)))
    # The busy feeds (an event per edit) reach a process only while it has readers of them.
    bus.on_event("events", events.deliver, on_demand=True)
    bus.on_event("catalog", lambda e: asyncio.ensure_future(catalog.load(e)))
    catalog.changed = lambda sku: bus.publish_event("catalog", {"sku": sku})
    rooms = Rooms(config, store, catalog, stock, bus)
    rooms.shop_codes = discounts.get
    stock.hold_listeners.append(rooms.on_expired)
    rooms.edit_listeners.append(kiosks.on_client_edit(app))
    rooms.edit_listeners.append(lambda who, cart_id: webhooks.note_activity(app, cart_id, who.sub))
    # Every process's stock viewers hear every process's decisions, through the bus.
    stock.level_listeners.append(lambda levels: bus.publish_event("stock", levels))
    bus.on_event("stock", feeds.changed, on_demand=True)
    app[STOCK], app[FEEDS], app[ROOMS], app[EVENTS], app[DISCOUNTS] = stock, feeds, rooms, events, discounts
    await bus.start()
    await stock.start()
    if config.demo:
        await load_demo(catalog, stock)
    yield
    await rooms.close()
    await stock.stop()
    await bus.stop()
    await store.close()


def open_stock(config: Config, store: Store) -> StockAuthority:
    """The embedded actor keeps its decisions in the SQLite store; with Redis, Redis decides."""
    if is_embedded(config.store):
        return StockActor(cast(StockLog, store), config.hold_ttl_seconds)
    from .stock_redis import RedisStock
    from .stock_redis_cluster import RedisClusterStock

    cls = RedisClusterStock if config.store.startswith("redis+cluster://") else RedisStock
    return cls(config.store, config.hold_ttl_seconds)
