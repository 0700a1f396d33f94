"""What the app carries: every service, built and wired in one place, held under one typed AppKey."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from aiohttp import web

from .browsing import Browsing, has_open_cart
from .bus import Bus, open_bus
from .carts import Carts
from .catalog import CatalogCache
from .checkout_groups import TOPIC as GROUPS_TOPIC, GroupBook
from .chat import Chat
from .config import Config
from .customers import Customers
from .demo import load_demo
from .discounts import DiscountBook, Offers
from .feeds import EventFeed, StockFeed, shop_event
from .invites import Invites
from .kiosks import Kiosks
from .mail.mailings import Mailings
from .mail.service import MailService
from .merging import Merging
from .metrics import Metrics, RoomMetrics, watch
from .nudges import TOPIC as RULES_TOPIC, Nudges
from .order_records import backfill
from .orders import Orders
from .hooks import Hooks
from .shop_floor import ShopFloor
from .splitting import Splitting
from .sync.registry import Rooms
from .stock import StockAuthority, open_stock
from .store import Store, open_store
from .store.index import ShopIndex, open_index
from .tokens import TokenVerifier, from_config
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
    groups: GroupBook
    rooms: Rooms
    stock_feed: StockFeed
    events: EventFeed
    webhooks: Webhooks
    carts: Carts
    merging: Merging
    splitting: Splitting
    offers: Offers
    orders: Orders
    customers: Customers
    invites: Invites
    kiosks: Kiosks
    index: ShopIndex  # orders listed and customers found (server/store/index.py)
    browsing: Browsing
    mail: MailService
    mailings: Mailings
    tokens: TokenVerifier
    metrics: Metrics
    nudges: Nudges
    chat: Chat

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

    def browsed(type_: str, data: dict) -> None:  # the shop floor hears it, and the nudge rules' clocks
        shop_event(bus, type_, **data)
        nudges.browsed(type_, data)
    browsing = Browsing(browsed, lambda sku: catalog.get(sku) is not None,
                        lambda who: has_open_cart(store, who), config.max_messages_per_second)
    stock_feed, events = StockFeed(stock.levels, browsing.count), EventFeed()
    discounts = DiscountBook(store, bus)
    await discounts.load()
    metrics = Metrics()
    groups = GroupBook(store, bus)
    await groups.load()
    rooms = Rooms(config, store, catalog, stock, bus, Hooks(), shop_codes=discounts.get, metrics=metrics,
                  groups=groups.get)
    webhooks = Webhooks(config, store, stock, rooms)
    carts = Carts(config, store, rooms, stock, catalog, discounts, bus)
    merging = Merging(store, stock, rooms, bus, carts, config.limits)
    kiosks = Kiosks(config, store, bus, carts)
    mail = MailService(config, store, catalog, index)
    offers = Offers(rooms, bus)
    nudges = Nudges(store, bus, offers)
    await nudges.load()
    services = Services(
        config=config, store=store, bus=bus, stock=stock, catalog=catalog, discounts=discounts, groups=groups,
        rooms=rooms,
        stock_feed=stock_feed, events=events, webhooks=webhooks, carts=carts, merging=merging,
        splitting=Splitting(store, stock, rooms, bus, carts),
        offers=offers, orders=Orders(config, store, stock, rooms, catalog, discounts, bus, webhooks, index),
        customers=Customers(store, catalog, stock, rooms, index), invites=Invites(store, carts, merging), kiosks=kiosks,
        index=index, browsing=browsing, mail=mail, mailings=Mailings(mail, bus), tokens=from_config(config),
        metrics=metrics, nudges=nudges, chat=Chat(config, rooms, bus))
    _wire(services)
    await bus.start()
    await stock.start()
    await services.tokens.start()  # an identity provider's keys (JWKS), fetched once at start
    if config.demo:
        await load_demo(catalog, stock)
    await kiosks.start()
    await webhooks.start()
    browsing.start()
    await mail.start()
    await services.mailings.start()
    nudges.start(rooms.rooms)
    try:
        yield services
    finally:
        await nudges.stop()
        await services.mailings.stop()
        await mail.stop()
        await browsing.stop()
        await webhooks.stop()
        await kiosks.stop()  # ended before the store closes
        await rooms.close()
        await stock.stop()
        await bus.stop()
        await store.close()


def _wire(s: Services) -> None:
    """Who hears what: bus topics, stock notices, and the rooms' extensions (registered before the bus starts)."""
    s.bus.on_event("discounts", lambda e: asyncio.ensure_future(s.discounts.load(e)))
    s.bus.on_event("catalog", lambda e: asyncio.ensure_future(_catalog_changed(s, e)))
    s.bus.on_event(RULES_TOPIC, lambda e: asyncio.ensure_future(s.nudges.load(e)))
    # Group rules changed anywhere: every process's open carts say their conflicts again.
    s.bus.on_event(GROUPS_TOPIC, lambda e: asyncio.ensure_future(_groups_changed(s, e)))
    # The busy feeds (an event per edit) reach a process only while it has readers of them.
    s.bus.on_event("events", s.events.deliver, on_demand=True)
    s.bus.on_event("revoke", s.events.on_revoked)  # a kiosk signed out: its order feeds end with its cart sockets
    s.stock.hold_listeners.append(s.rooms.on_expired)
    # The capabilities that follow the rooms, in this order: kiosk idle clocks, abandonment clocks, shop feed,
    # chat messages on the shop floor, metrics, nudge rules' clocks.
    for extension in (s.kiosks, s.webhooks, ShopFloor(s.bus), s.chat, RoomMetrics(s.metrics), s.nudges):
        s.rooms.hooks.add(extension)
    s.orders.listeners.append(s.mail.order_changed)  # paid, dispatched, delivered, cancelled: order mail
    # Every process's stock viewers hear every process's decisions, through the bus.
    s.stock.level_listeners.append(lambda levels: s.bus.publish_event("stock", levels))
    s.bus.on_event("stock", s.stock_feed.changed, on_demand=True)
    s.browsing.on_viewers = s.stock_feed.announce_viewers_spread  # `{sku, viewers}` as browsers move
    watch(s.metrics, s.store, s.stock, s.bus, s.rooms, s.stock_feed, s.events,
          (s.webhooks.outbox, s.mail.outbox, s.mail.bulk))


async def _catalog_changed(s: Services, event: object) -> None:
    await s.catalog.load(event)
    if s.groups.current.rules:  # a product may have moved to another checkout group
        s.rooms.reprice_all()


async def _groups_changed(s: Services, event: object) -> None:
    await s.groups.load(event)
    s.rooms.reprice_all()


def services_context(config: Config) -> Callable[[web.Application], AsyncIterator[None]]:
    """The app's cleanup_ctx: the services live from startup to cleanup."""
    async def context(app: web.Application) -> AsyncIterator[None]:
        async with open_services(config) as services:
            app[SERVICES] = services
            yield
    return context
