"""Who a mailing goes to: a segment of customers (bought a SKU, of a category, since a date, matching text).

`select` asks the shop's customer search (server/store/index.py, issue 18 #3): a segment's fields
mean what `GET /api/customers`' filters mean, and only past buyers with `marketingConsent` and an
email are recipients. Consent lives in the customer's profile there (`PUT /api/customers/{id}`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..store.index import MAX_LIMIT, CustomerQuery, ShopIndex
from .compose import valid_email

FIELDS = ("q", "bought", "category", "since")


class BadSegment(ValueError):
    """A segment that names an unknown field or has a value of the wrong kind."""


@dataclass(frozen=True)
class Segment:
    q: str = ""
    bought: frozenset[str] = frozenset()
    category: str = ""
    since: int = 0  # ms

    def to_json(self) -> dict[str, Any]:
        return {"q": self.q, "bought": sorted(self.bought), "category": self.category, "since": self.since}


@dataclass(frozen=True)
class Recipient:
    customer_id: str
    email: str
    name: str


def _since(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            return int(parsed.timestamp() * 1000)
    raise BadSegment("since is a date (2026-06-01), a date-time, or milliseconds since 1970")


def parse(raw: Any) -> Segment:
    """A segment from a request body; raises BadSegment naming what is wrong."""
    if raw is None:
        return Segment()
    if not isinstance(raw, dict):
        raise BadSegment("segment is an object with q, bought, category and since")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise BadSegment(f"unknown segment field {unknown[0]!r} (a segment has {', '.join(FIELDS)})")
    q, category = raw.get("q") or "", raw.get("category") or ""
    if not isinstance(q, str) or len(q) > 200:
        raise BadSegment("q is a text of at most 200 characters")
    if not isinstance(category, str) or len(category) > 100:
        raise BadSegment("category is a text of at most 100 characters")
    bought = raw.get("bought") or []
    if isinstance(bought, str):
        bought = [s.strip() for s in bought.split(",") if s.strip()]
    if not isinstance(bought, list) or len(bought) > 100 or not all(isinstance(s, str) and 0 < len(s) <= 200
                                                                    for s in bought):
        raise BadSegment("bought is a list of SKUs (or one comma-separated text), at most 100")
    since = _since(raw["since"]) if raw.get("since") not in (None, "") else 0
    return Segment(q.strip().lower(), frozenset(bought), category, since)


def query(segment: Segment, cursor: str | None = None) -> CustomerQuery:
    """The customer search a segment is."""
    return CustomerQuery(q=segment.q, bought=tuple(sorted(segment.bought)), category=segment.category or None,
                         since=segment.since or None, limit=MAX_LIMIT, cursor=cursor)


async def select(index: ShopIndex, segment: Segment) -> list[Recipient]:
    """The recipients of a segment, each customer once, in a stable order (by customer id): past
    buyers it finds who agree to marketing mail and have an email."""
    out: list[Recipient] = []
    cursor: str | None = None
    while True:
        page = await index.search_customers(query(segment, cursor))
        for customer in page.items:
            if customer["orders"] > 0 and customer["marketingConsent"] and valid_email(customer["email"]):
                out.append(Recipient(customer["id"], customer["email"], str(customer["name"] or "")))
        if page.next is None:
            return out
        cursor = page.next


async def consents(index: ShopIndex, customer_id: str) -> bool:
    """Whether the customer still agrees to marketing mail (checked again before each mail)."""
    return bool((await index.get_customer(customer_id) or {}).get("marketingConsent"))


async def unsubscribe(index: ShopIndex, customer_id: str) -> bool:
    """Ends the customer's marketing consent; returns whether it was on."""
    was = await consents(index, customer_id)
    if was:
        await index.put_customer(customer_id, {"marketingConsent": False})
    return was
