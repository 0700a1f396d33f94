"""Who may call which route: the rules routes declare (`api.add(..., auth=RULE)`), enforced by one guard.

A rule names the roles of DESIGN.md's table in words (what the OpenAPI document says) and checks
them: 401 without a valid token, 404 when what the path names does not exist, 403 otherwise. What
it admits is kept on the request for the handler: the caller, and the cart or order it named.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from . import auth
from .access import may_open, may_see_customer, may_see_order
from .errors import ApiError
from .refusals import Forbidden, NotFound
from .services import SERVICES
from .store import CartRecord

Check = Callable[[web.Request, auth.Identity], Awaitable[None]]

_CALLER = web.RequestKey("livecart.caller", auth.Identity)
_CART = web.RequestKey("livecart.cart", CartRecord)
_ORDER: web.RequestKey[dict[str, Any]] = web.RequestKey("livecart.order", dict)


@dataclass(frozen=True)
class Rule:
    """One route's access rule: `doc` for the document, `checks` run in turn once the caller is known."""

    doc: str
    checks: tuple[Check, ...] = ()
    token_in_query: bool = False  # browsers cannot set headers on EventSource: ?token= works too

    async def __call__(self, request: web.Request) -> None:
        # An identity provider's key the token names is fetched first if unknown (bounded; server/tokens.py).
        await request.app[SERVICES].tokens.prepare(token_of(request, self.token_in_query))
        who = identify(request, self.token_in_query)
        request[_CALLER] = who
        for check in self.checks:
            await check(request, who)


def token_of(request: web.Request, token_in_query: bool = False) -> str:
    """The token of `Authorization: Bearer …` (or of `?token=`, where allowed)."""
    token = request.query.get("token") if token_in_query else None
    if token is None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
    return token


def identify(request: web.Request, token_in_query: bool = False) -> auth.Identity:
    """The identity behind `Authorization: Bearer …` (or `?token=`, where allowed), or a 401."""
    try:
        return request.app[SERVICES].tokens.verify(token_of(request, token_in_query))
    except auth.TokenError as exc:
        raise ApiError(401, "unauthorized", str(exc)) from None


def caller(request: web.Request) -> auth.Identity:
    """Who the guard admitted."""
    return request[_CALLER]


def cart(request: web.Request) -> CartRecord:
    """The cart in the path, which the guard found and let the caller open."""
    return request[_CART]


def order(request: web.Request) -> dict[str, Any]:
    """The order in the path, which the guard found and let the caller see."""
    return request[_ORDER]


# -- checks ---------------------------------------------------------------------------------------

def role(*roles: str, message: str) -> Check:
    async def check(request: web.Request, who: auth.Identity) -> None:
        if who.role not in roles:
            raise Forbidden("forbidden", message)
    return check


def itself(name: str, role_: str, message: str) -> Check:
    """The caller is the one the path names (`{name}`) in that role, or an admin."""
    async def check(request: web.Request, who: auth.Identity) -> None:
        if not (who.is_admin or (who.role == role_ and who.sub == request.match_info[name])):
            raise Forbidden("forbidden", message)
    return check


async def opens_cart(request: web.Request, who: auth.Identity) -> None:
    store = request.app[SERVICES].store
    record = await store.get_cart(request.match_info["cartId"])
    if record is None:
        raise NotFound("no_cart", "no such cart")
    if not await may_open(store, who, record):
        raise Forbidden("forbidden", "not allowed to open this cart")
    request[_CART] = record


async def sees_order(request: web.Request, who: auth.Identity) -> None:
    services = request.app[SERVICES]
    found = await services.orders.get(request.match_info["orderId"])
    if not await may_see_order(services.store, who, found):
        raise Forbidden("forbidden", "not your order")
    request[_ORDER] = found


async def sees_customer(request: web.Request, who: auth.Identity) -> None:
    if not await may_see_customer(request.app[SERVICES].store, who, request.match_info["customerId"]):
        raise Forbidden("forbidden", "not allowed to see this customer")


async def lists_owner(request: web.Request, who: auth.Identity) -> None:
    """The carts of `?owner=` (the caller's by default): operators (a lookup) and admins list anyone's."""
    if who.role != "operator" and not who.is_admin and request.query.get("owner", who.sub) != who.sub:
        raise Forbidden("forbidden", "you may list only your own carts")


async def signed_in_customer(request: web.Request, who: auth.Identity) -> None:
    if who.role != "customer" or who.sub.startswith("anon-"):
        raise Forbidden("forbidden", "only a signed-in customer claims carts")


# -- the rules ------------------------------------------------------------------------------------

def admin(message: str, doc: str = "admin") -> Rule:
    return Rule(doc, (role("admin", message=message),))


CART_OPENER = Rule("whoever may open the cart", (opens_cart,))
ADMINS_ONLY = admin("admins only")
SHOP_ADMIN = admin("only an admin may change the catalog or stock")
