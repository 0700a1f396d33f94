"""Customer records: profile changes, what a paid order adds, search queries, and who may list whose orders."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from ..crdt.details import EMAIL
from .access import may_see_customer
from .auth import Identity
from .order_records import limit, purchase, since
from .refusals import Forbidden, Invalid
from .store import Store
from .store.index import CustomerQuery, ShopIndex

PROFILE_LIMITS = {"name": 200, "email": 254, "phone": 32}
# Bounds that keep the whole query string within aiohttp's 8,190-byte request line, even when every
# character takes 12 bytes percent-encoded.
MAX_QUERY_CHARS = 120
MAX_BOUGHT_CHARS = 240  # "SKU,SKU,…"
MAX_NAME_CHARS = 100  # a category
MAX_CURSOR_CHARS = 200


def profile_update(body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `PUT /api/customers/{id}` that were given, checked (null clears a field)."""
    unknown = set(body) - {*PROFILE_LIMITS, "marketingConsent"}
    if unknown:
        raise Invalid("bad_profile", f"unknown field {sorted(unknown)[0]!r} (name, email, phone, marketingConsent)")
    out: dict[str, Any] = {}
    for name, most in PROFILE_LIMITS.items():
        if name not in body:
            continue
        value = body[name]
        if value is not None and (not isinstance(value, str) or len(value.strip()) > most):
            raise Invalid("bad_profile", f"{name} must be a string of at most {most} characters, or null")
        out[name] = value.strip() if isinstance(value, str) and value.strip() else None
    if isinstance(body.get("email"), str) and not EMAIL.match(body["email"]):
        raise Invalid("bad_profile", "email is not an email address (null clears it)")
    if "marketingConsent" in body:
        if not isinstance(body["marketingConsent"], bool):
            raise Invalid("bad_profile", "marketingConsent is true or false")
        out["marketingConsent"] = body["marketingConsent"]
    return out


def customer_query(query: Mapping[str, str]) -> CustomerQuery:
    """`GET /api/customers`'s query string."""
    unknown = set(query) - {"q", "bought", "category", "since", "limit", "cursor"}
    if unknown:
        raise Invalid("bad_query", f"unknown filter {sorted(unknown)[0]!r} (q, bought, category, since)")
    q = query.get("q", "")
    if len(q) > MAX_QUERY_CHARS:
        raise Invalid("bad_query", f"q is at most {MAX_QUERY_CHARS} characters")
    if len(query.get("bought", "")) > MAX_BOUGHT_CHARS:
        raise Invalid("bad_query", f"bought is at most {MAX_BOUGHT_CHARS} characters of SKUs")
    bought = tuple(dict.fromkeys(s.strip() for s in query.get("bought", "").split(",") if s.strip()))
    category = query.get("category") or None
    cursor = query.get("cursor") or None
    if category is not None and len(category) > MAX_NAME_CHARS:
        raise Invalid("bad_query", f"category is at most {MAX_NAME_CHARS} characters")
    if cursor is not None and len(cursor) > MAX_CURSOR_CHARS:
        raise Invalid("bad_query", "cursor is the `next` of the page before")
    return CustomerQuery(q=q, bought=bought, category=category, since=since(query), limit=limit(query),
                         cursor=cursor)


async def record_paid(index: ShopIndex, order: dict[str, Any], category_of: Callable[[str], str | None]) -> bool:
    """A paid order counts for its customer (once) and fills a name and email the profile lacks."""
    return await index.add_purchase(purchase(order, category_of))


async def record_cancelled(index: ShopIndex, order: dict[str, Any], category_of: Callable[[str], str | None]) -> bool:
    """A paid order called off no longer counts in its customer's orders and spend."""
    return await index.cancel_purchase(purchase(order, category_of))


async def orders_customer(store: Store, who: Identity, asked: str | None) -> str | None:
    """Whose orders `who` may list (None: everyone's, for an admin).

    An admin any; a customer its own; an operator a customer it looked up; an assistant a customer
    it serves; a kiosk the customer signed in at it. Refused: Forbidden."""
    if who.is_admin:
        return asked
    if who.role == "customer":
        if asked not in (None, who.sub):
            raise Forbidden("forbidden", "you may list only your own orders")
        return who.sub
    if asked is None:
        raise Forbidden("forbidden", "give the customer whose orders you want (?customer=)")
    if who.role == "operator" and await store.get_record("lookup", f"{who.sub}|{asked}") is not None:
        return asked
    if who.role == "assistant" and await may_see_customer(store, who, asked):
        return asked
    if who.role == "kiosk" and ((await store.get_record("kiosk", who.sub)) or {}).get("customerId") == asked:
        return asked
    raise Forbidden("forbidden", "look the customer up first" if who.role == "operator" else "not your customer")
