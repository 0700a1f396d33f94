"""Who a mailing goes to: a segment of customers (bought a SKU, of a category, since a date, matching text).

A small query over the stored paid orders and profiles, behind `select`, until the customer search
of issue 18 (#3) lands; then `select` asks it instead. Only customers with `marketingConsent` and
an email are recipients.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..store import Store
from .compose import valid_email

FIELDS = ("q", "bought", "category", "since")
PAID = ("confirmed", "dispatched", "delivered")


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


def _status(order: dict[str, Any]) -> str:
    return str(order.get("status") or order.get("state") or "")


async def select(store: Store, segment: Segment, products: dict[str, dict[str, Any]]) -> list[Recipient]:
    """The recipients of a segment, each customer once, in a stable order (by customer id)."""
    in_category = {sku for sku, p in products.items() if segment.category and p.get("category") == segment.category}
    matched: dict[str, dict[str, Any]] = {}  # customer -> their latest matching paid order
    for order in (await store.list_records("order")).values():
        if _status(order) not in PAID or int(order.get("createdAt", 0)) < segment.since:
            continue
        skus = {line.get("sku") for line in order.get("lines", [])}
        if segment.bought and not skus & segment.bought:
            continue
        if segment.category and not skus & in_category:
            continue
        customer = str(order.get("customerId", ""))
        if customer not in matched or order.get("createdAt", 0) > matched[customer].get("createdAt", 0):
            matched[customer] = order
    out = []
    for customer in sorted(matched):
        profile = await store.get_record("profile", customer) or {}
        if profile.get("marketingConsent") is not True:
            continue
        details = matched[customer].get("details") or {}
        email = profile.get("email") if valid_email(profile.get("email")) else details.get("email")
        if not valid_email(email):
            continue
        name = str(profile.get("name") or details.get("name") or "")
        phone = str(profile.get("phone") or details.get("phone") or "")
        if segment.q and segment.q not in f"{name}\n{email}\n{phone}".lower():
            continue
        out.append(Recipient(customer, email, name))
    return out


async def consents(store: Store, customer_id: str) -> bool:
    """Whether the customer still agrees to marketing mail (checked again before each mail)."""
    return (await store.get_record("profile", customer_id) or {}).get("marketingConsent") is True


async def unsubscribe(store: Store, customer_id: str) -> bool:
    """Ends the customer's marketing consent; returns whether it was on."""
    profile = await store.get_record("profile", customer_id) or {}
    was = profile.get("marketingConsent") is True
    await store.put_record("profile", customer_id, {**profile, "marketingConsent": False})
    return was
