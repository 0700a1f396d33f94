"""Thin aiohttp handlers over the services, one module per capability; importing this registers them all
(in this order, which is the order of the OpenAPI document's paths)."""
from __future__ import annotations

from aiohttp import web

from . import (  # noqa: F401 (importing a module registers its routes)
    catalog, checkout_groups, stock, health, sessions, feeds, carts, discounts, orders, customers, invites, kiosks,
    mail, apidocs, metrics, rules,
)
from ..openapi import api
from ..sync.socket import cart_socket
from ..services import SERVICES


async def _cart_socket(request: web.Request) -> web.StreamResponse:
    """GET /ws/carts/{cartId}: the sync core's socket, given what it needs."""
    services = request.app[SERVICES]
    await services.tokens.prepare(request.query.get("token"))  # an identity provider's new key, if need be
    return await cart_socket(request, services.config, services.rooms, services.tokens.verify)


def add_routes(app: web.Application) -> None:
    """Every HTTP route, and the websockets (which are not in the OpenAPI document)."""
    app.add_routes(api.routes)
    app.router.add_get("/ws/carts/{cartId}", _cart_socket)
    app.router.add_get("/ws/stock", stock.stock_socket)
    app.router.add_get("/ws/admin", feeds.admin_socket)
    app.router.add_get("/ws/me", feeds.me_socket)
    app.router.add_get("/ws/orders", feeds.orders_socket)
