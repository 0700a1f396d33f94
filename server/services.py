"""What the app carries: every service, built and wired in one place, held under one typed AppKey."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from aiohttp import web

from .bus import Bus, open_bus
from .carts import Carts
from .catalog import CatalogCache
from .config import Config
from .customers import Customers
from .demo import load_demo
from .discounts import DiscountBook, Offers
from .feeds import EventFeed, StockFeed
from .invites import Invites
from .kiosks import Kiosks
from .merging import Merging
from .order_records import backfill
from .orders import Orders
from .rooms import Rooms
from .stock import StockAuthority, open_stock
from .store import Store, open_store
from .store.index import ShopIndex, open_index
from .webhooks import Webhooks


@dataclass
class Services:
    """The services of one app; each knows only the ones it was given, none knows aiohttp."""

    config: Config
    store: Store
    bus: Bus
    stock: StockAuthority
    catalog: CatalogCache
    discounts: DiscountBook
    rooms: Rooms
    stock_feed: StockFeed
    events: EventFeed
    webhooks: Webhooks
    carts: Carts
    merging: Merging
    offers: Offers
    orders: Orders
    customers: Customers
    invites: Invites
    kiosks: Kiosks
    index: ShopIndex  # orders listed and customers found (server/store/index.py)

    def close_connections(self) -> None:
        """Server shutdown, first step: long-lived sockets and streams end (clients reconnect elsewhere)."""
        self.stock_feed.close()
        self.events.close()
        self.rooms.close_connections()


SERVICES: web.AppKey[Services] = web.AppKey("services", Services)


@asynccontextmanager
async def open_services(config: Config) -> AsyncIterator[Services]:
    """Opens the store, bus and stock authority, builds the services on them, and wires who hears what."""
    store = open_store(config.store, config.data_dir, config.fsync)
    await store.open()
    bus = open_bus(config.bus)
    catalog = CatalogCache(store, bus)
    await catalog.load()
    index = open_index(store)
    await index.open()
    await backfill(store, index, lambda sku: getattr(catalog.get(sku), "category", None))
    stock = open_stock(config, store)
    stock_feed, events = StockFeed(stock.levels), EventFeed()
    discounts = DiscountBook(store, bus)
    await discounts.load()
    rooms = Rooms(config, store, catalog, stock, bus)
    rooms.shop_codes = discounts.get  # the room prices with the shop's codes (until the sync core takes them)
    webhooks = Webhooks(config, store, stock, rooms)
    carts = Carts(config, store, rooms, stock, catalog, discounts, bus)
    merging = Merging(store, stock, rooms, bus, carts, config.limits)
    kiosks = Kiosks(config, store, bus, carts)
    services = Services(
        config=config, store=store, bus=bus, stock=stock, catalog=catalog, discounts=discounts, rooms=rooms,
        stock_feed=stock_feed, events=events, webhooks=webhooks, carts=carts, merging=merging,
        offers=Offers(rooms, bus), orders=Orders(config, store, stock, rooms, catalog, discounts, bus, webhooks, index),
        customers=Customers(store, catalog, stock, rooms, index), invites=Invites(store, carts, merging), kiosks=kiosks,
        index=index)
    _wire(services)
    await bus.start()
    await stock.start()
    if config.demo:
        await load_demo(catalog, stock)
    await kiosks.start()
    await webhooks.start()
    try:
        yield services
    finally:
        await webhooks.stop()
        await kiosks.stop()  # ended before the store closes
        await rooms.close()
        await stock.stop()
        await bus.stop()
        await store.close()


def _wire(s: Services) -> None:
    """Who hears what: bus topics, stock notices and cart edits (registered before the bus starts)."""
    s.bus.on_event("discounts", lambda e: asyncio.ensure_future(s.discounts.load(e)))
    s.bus.on_event("catalog", lambda e: asyncio.ensure_future(s.catalog.load(e)))
    # The busy feeds (an event per edit) reach a process only while it has readers of them.
    s.bus.on_event("events", s.events.deliver, on_demand=True)
    s.stock.hold_listeners.append(s.rooms.on_expired)
    s.rooms.edit_listeners.append(s.kiosks.on_edit)
    s.rooms.edit_listeners.append(lambda who, cart_id: s.webhooks.note_activity(cart_id, who.sub))
    # Every process's stock viewers hear every process's decisions, through the bus.
    s.stock.level_listeners.append(lambda levels: s.bus.publish_event("stock", levels))
    s.bus.on_event("stock", s.stock_feed.changed, on_demand=True)


def services_context(config: Config) -> Callable[[web.Application], AsyncIterator[None]]:
    """The app's cleanup_ctx: the services live from startup to cleanup."""
    async def context(app: web.Application) -> AsyncIterator[None]:
        async with open_services(config) as services:
            app[SERVICES] = services
            yield
    return context
