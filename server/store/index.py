"""The shop index every store backend keeps beside its records: orders by time, customers by what they are and bought.

The queries, the search terms and the cursors are defined here once, so the SQLite and the Redis
index answer alike (tests/server/test_store_contract.py runs one suite on both).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Protocol

PROFILE_FIELDS = ("name", "email", "phone", "marketingConsent")
MAX_LIMIT = 200


@dataclass(frozen=True)
class OrderQuery:
    """`GET /api/orders`: newest first; `cursor` is the `next` of the page before."""

    status: str | None = None
    customer: str | None = None
    since: int | None = None  # ms: orders created at or after
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True)
class CustomerQuery:
    """`GET /api/customers`: by id; every given filter must hold."""

    q: str = ""  # each word of it starts a word of the name, email or phone
    bought: tuple[str, ...] = ()  # paid orders with any of these SKUs
    category: str | None = None  # paid orders with a SKU of this category
    since: int | None = None  # ms: those purchases (or, alone, the last order) at or after
    limit: int = 50
    cursor: str | None = None  # the last customer id of the page before

    @property
    def tokens(self) -> list[str]:
        return query_tokens(self.q)


@dataclass(frozen=True)
class Purchase:
    """A paid order as the customer index counts it (once per order id)."""

    customer: str
    order_id: str
    at: int  # ms
    total: int
    skus: tuple[str, ...]
    categories: tuple[str, ...] = ()
    name: str | None = None  # fills the profile's when it has none
    email: str | None = None


@dataclass
class Page:
    items: list[dict[str, Any]] = field(default_factory=list)
    next: str | None = None


class ShopIndex(Protocol):
    """Orders and customers, searchable. Every write is idempotent."""

    async def open(self) -> None: ...
    async def put_order(self, order: dict[str, Any]) -> None:
        """Creates or replaces an order (keyed by `id`, listed by `createdAt`)."""
    async def list_orders(self, query: OrderQuery) -> Page: ...
    async def get_customer(self, customer_id: str) -> dict[str, Any] | None: ...
    async def put_customer(self, customer_id: str, profile: dict[str, Any]) -> dict[str, Any]:
        """Sets the given profile fields (PROFILE_FIELDS); returns the whole customer."""
    async def add_purchase(self, purchase: Purchase) -> bool:
        """Counts a paid order (False: it was counted before)."""
    async def add_purchases(self, purchases: list[Purchase]) -> int:
        """Many at once (a backfill, an import): how many were new."""
    async def cancel_purchase(self, purchase: Purchase) -> bool:
        """Takes a counted order off its customer's order count and spend, once (False: it was not
        counted, or was taken off before); the customer stays found by what they ordered."""
    async def put_customers(self, profiles: dict[str, dict[str, Any]]) -> None:
        """Many `put_customer`s at once."""
    async def search_customers(self, query: CustomerQuery) -> Page: ...


def order_key(order: dict[str, Any]) -> str:
    """How orders sort (newest last) and what a cursor names: creation time, then id."""
    return f"{int(order['createdAt']):013d}|{order['id']}"


def since_key(since: int) -> str:
    return f"{since:013d}|"


def _fold(text: str) -> str:
    """Case and accents do not matter: "Ádler" is found by "adler"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^\w]+", _fold(text)) if w and w != "_"]


def customer_terms(name: str | None, email: str | None, phone: str | None) -> set[str]:
    """What a customer is found by: the words of the name, the email whole and its words, and
    the phone's digits from any digit on (so "+44 20 7946 0958" is found by "020 7946" or "0958")."""
    terms = set(_words(name or ""))
    if email:
        terms.add(_fold(email.strip()))
        terms.update(_words(email))
    digits = "".join(re.findall(r"\d", phone or ""))
    terms.update(digits[i:] for i in range(len(digits) - 2) if digits[i] != "0")
    return {t[:64] for t in terms}


PHONE_LIKE = re.compile(r"[\d\s+\-().]+")


def query_tokens(q: str) -> list[str]:
    """The words of a search: a phone number is one run of digits (leading zeros, as in a
    national prefix, do not count), an email-like word stays whole, anything else splits into words."""
    folded = _fold(q).strip()
    if PHONE_LIKE.fullmatch(folded) and len(re.findall(r"\d", folded)) >= 3:
        return ["".join(re.findall(r"\d", folded)).lstrip("0")[:64] or "0"]
    out: list[str] = []
    for word in folded.split():
        out.extend([word] if "@" in word else [w.lstrip("0") or w if w.isdigit() else w for w in _words(word)])
    return [t[:64] for t in dict.fromkeys(out)]


def customer_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "name": row.get("name") or None, "email": row.get("email") or None,
            "phone": row.get("phone") or None, "marketingConsent": bool(row.get("marketingConsent")),
            "orders": int(row.get("orders") or 0), "spent": int(row.get("spent") or 0),
            "lastOrderAt": int(row["lastOrderAt"]) if row.get("lastOrderAt") is not None else None}


def open_index(store: Any) -> ShopIndex:
    """The index that goes with a store (the same SQLite file, or the same Redis)."""
    from .sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        from .index_sqlite import SqliteIndex

        return SqliteIndex(store)
    from .index_redis import RedisIndex

    return RedisIndex(store)
