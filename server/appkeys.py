"""Typed keys for what the app carries (aiohttp's AppKey: no string-keyed globals)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .catalog import CatalogCache
    from .checkout import DiscountBook
    from .config import Config
    from .feeds import EventFeed, StockFeed
    from .rooms import Rooms
    from .stock import StockAuthority
    from .store import Store
    from .store.index import ShopIndex

CONFIG: web.AppKey["Config"] = web.AppKey("config")
STORE: web.AppKey["Store"] = web.AppKey("store")
CATALOG: web.AppKey["CatalogCache"] = web.AppKey("catalog")
ROOMS: web.AppKey["Rooms"] = web.AppKey("rooms")
STOCK: web.AppKey["StockAuthority"] = web.AppKey("stock")
FEEDS: web.AppKey["StockFeed"] = web.AppKey("feeds")
EVENTS: web.AppKey["EventFeed"] = web.AppKey("events")
DISCOUNTS: web.AppKey["DiscountBook"] = web.AppKey("discounts")
INDEX: web.AppKey["ShopIndex"] = web.AppKey("index")  # orders and customers, searchable (server/store/index.py)
