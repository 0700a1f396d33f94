"""Orders as records: the contract's shape, its status history (`at`, `by`) and tracking, kept in the store and its index."""
from __future__ import annotations

import re
from typing import Any, Callable, Mapping

from .refusals import Invalid
from .store import Store
from .store.index import MAX_LIMIT, OrderQuery, Purchase, ShopIndex

CURSOR = r"^\d{13}\|[\w-]{1,100}$"  # what order_key makes
# The query's schemas, as the handlers read them (the OpenAPI document says the same).
SINCE = {"anyOf": [{"type": "string", "pattern": r"^\d{1,15}$"}, {"type": "string", "format": "date"}],
         "description": "ms since 1970, or a date (an ISO 8601 time is taken too)"}
LIMIT = {"type": "integer", "minimum": 1, "maximum": 200, "description": "1..200 (50)"}
STATUSES = ("awaiting_payment", "payment_failed", "confirmed", "dispatched", "delivered", "cancelled")
TRACKING_LIMITS = {"carrier": 100, "number": 100, "url": 2000}
# The OpenAPI document carries these patterns too, so the spaces are named (Python's \s and ECMA's differ).
SPACES = r"\s\u001c-\u001f\u0085\ufeff"
FILLED = rf"[^{SPACES}]"  # a character that is not a space in either
TRACKING_URL = rf"^https?://[^{SPACES}]+$"


def new_order(order_id: str, cart_id: str, customer_id: str, lines: list[dict[str, Any]],
              pricing: Mapping[str, Any], details: dict[str, Any], at: int, by: str) -> dict[str, Any]:
    """An order awaiting payment. `orderId`/`status` are the contract's names; `id`/`state` stay for
    the clients and webhooks that read them before (the same values)."""
    status = "awaiting_payment"
    return {"orderId": order_id, "id": order_id, "cartId": cart_id, "customerId": customer_id, "lines": lines,
            "currency": pricing["currency"], "subtotal": pricing["subtotal"], "discounts": pricing["discounts"],
            "total": pricing["total"], "details": details, "status": status, "state": status, "createdAt": at,
            "history": [{"status": status, "state": status, "at": at, "by": by}]}


def moved(order: dict[str, Any], status: str, by: str, at: int, **extra: Any) -> dict[str, Any]:
    """The order after a step of its workflow, with the step in its history."""
    return {**order, **extra, "orderId": order["id"], "status": status, "state": status,
            "history": [*order["history"], {"status": status, "state": status, "at": at, "by": by}]}


def status_of(order: dict[str, Any]) -> str:
    return str(order.get("status") or order["state"])


def tracking(value: Any) -> dict[str, str]:
    """`{carrier, number, url}` as given with `dispatched`: strings within bounds; the url http(s)."""
    if not isinstance(value, dict) or set(value) - set(TRACKING_LIMITS):
        raise Invalid("bad_tracking", "tracking is {carrier, number, url}")
    out = {}
    for name, limit in TRACKING_LIMITS.items():
        text = value.get(name)
        if not isinstance(text, str) or not 0 < len(text) <= limit or not re.search(FILLED, text):
            raise Invalid("bad_tracking", f"tracking.{name} must be a string of 1..{limit} characters")
        out[name] = text.strip()
    if not re.match(TRACKING_URL, value["url"]):
        raise Invalid("bad_tracking", "tracking.url must be an http(s) URL")
    return out


async def save(store: Store, index: ShopIndex, order: dict[str, Any]) -> None:
    """The record (what `GET /api/orders/{id}` reads) first, then the index the listings read."""
    await store.put_record("order", order["id"], order)
    await index.put_order(order)


def purchase(order: dict[str, Any], category_of: Callable[[str], str | None]) -> Purchase:
    """What a paid order tells the customer index."""
    details = order.get("details") or {}
    skus = tuple(line["sku"] for line in order["lines"])
    return Purchase(order["customerId"], order["id"], int(order["createdAt"]), int(order["total"]), skus,
                    tuple(c for c in map(category_of, skus) if c), details.get("name"), details.get("email"))


def _ms(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if value.isdigit() and len(value) <= 15:
        return int(value)
    from datetime import datetime, timezone
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid("bad_query", f"{name} is a date (2026-06-01), a time (ISO 8601) or ms since 1970") from None
    return int((when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp() * 1000)


def since(query: Mapping[str, str]) -> int | None:
    return _ms(query.get("since"), "since")


def limit(query: Mapping[str, str]) -> int:
    text = query.get("limit", "50")
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise Invalid("bad_query", f"limit is 1..{MAX_LIMIT}")
    return int(text)


def order_query(query: Mapping[str, str], customer: str | None) -> OrderQuery:
    """`GET /api/orders`'s query string (`customer` as the caller may see it)."""
    status = query.get("status")
    if status is not None and status not in STATUSES:
        raise Invalid("bad_query", f"status is one of {', '.join(STATUSES)}")
    cursor = query.get("cursor")
    if cursor is not None and not re.fullmatch(CURSOR, cursor):
        raise Invalid("bad_cursor", "cursor is the `next` of the page before")
    return OrderQuery(status=status, customer=customer, since=since(query), limit=limit(query), cursor=cursor)


PAID = ("confirmed", "dispatched", "delivered")


def shaped(order: dict[str, Any]) -> dict[str, Any]:
    """An order as stored before it had the contract's names (`id`/`state` only), in today's shape."""
    status = status_of(order)
    return {**order, "orderId": order["id"], "status": status,
            "history": [{**h, "status": h.get("status") or h.get("state")} for h in order.get("history", [])]}


async def backfill(store: Store, index: ShopIndex, category_of: Callable[[str], str | None]) -> int:
    """Orders stored before the index existed go into it, once (a marker record says so). Safe to
    run in many processes at once: every index write is idempotent."""
    if await store.get_record("index", "orders-v1") is not None:
        return 0
    stored = await store.list_records("order")
    paid = []
    for order in stored.values():
        order = shaped(order)
        await index.put_order(order)
        if order["status"] in PAID:
            paid.append(purchase(order, category_of))
    for i in range(0, len(paid), 500):
        await index.add_purchases(paid[i:i + 500])
    await store.put_record("index", "orders-v1", {"orders": len(stored)})
    return len(stored)
