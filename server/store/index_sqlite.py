"""The shop index in the embedded store's SQLite file: indexed columns (terms, SKUs, categories), no FTS needed."""
from __future__ import annotations

import sqlite3
from typing import Any, Callable, TypeVar

import orjson

from .index import (
    CustomerQuery, OrderQuery, Page, Purchase, customer_json, customer_terms, order_key, since_key,
)
from .sqlite import SqliteStore

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS order_index (
    id TEXT PRIMARY KEY, sort TEXT NOT NULL, customer TEXT NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS order_index_sort ON order_index(sort);
CREATE INDEX IF NOT EXISTS order_index_customer ON order_index(customer, sort);
CREATE INDEX IF NOT EXISTS order_index_status ON order_index(status, sort);
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY, name TEXT, email TEXT, phone TEXT, consent INTEGER NOT NULL DEFAULT 0,
    orders INTEGER NOT NULL DEFAULT 0, spent INTEGER NOT NULL DEFAULT 0, last_order_at INTEGER) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS customers_last ON customers(last_order_at);
CREATE TABLE IF NOT EXISTS customer_terms (
    term TEXT NOT NULL, customer TEXT NOT NULL, PRIMARY KEY (term, customer)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS customer_terms_of ON customer_terms(customer);
CREATE TABLE IF NOT EXISTS customer_bought (
    kind TEXT NOT NULL, value TEXT NOT NULL, customer TEXT NOT NULL, last_at INTEGER NOT NULL,
    PRIMARY KEY (kind, value, customer)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS customer_bought_at ON customer_bought(kind, value, last_at);
CREATE TABLE IF NOT EXISTS customer_purchases (order_id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS customer_cancelled (order_id TEXT PRIMARY KEY) WITHOUT ROWID;
"""
COLUMNS = "id, name, email, phone, consent, orders, spent, last_order_at"
TOP = "\U0010ffff"  # sorts after every character: `term < prefix + TOP` ends a prefix range


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    return customer_json(dict(zip(("id", "name", "email", "phone", "marketingConsent", "orders", "spent",
                                   "lastOrderAt"), row)))


class SqliteIndex:
    """Runs on the store's own thread and connection (records and this index share its file)."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.store._run(fn, *args)

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self.store.db
        db.execute("BEGIN IMMEDIATE")
        try:
            out = fn(db)
            db.execute("COMMIT")
            return out
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def open(self) -> None:
        await self._run(lambda: self.store.db.executescript(SCHEMA))

    # -- orders -----------------------------------------------------------------

    async def put_order(self, order: dict[str, Any]) -> None:
        await self._run(self.store.db.execute,
                        "INSERT OR REPLACE INTO order_index VALUES (?, ?, ?, ?, ?)",
                        (order["id"], order_key(order), order["customerId"], order.get("status") or order["state"],
                         orjson.dumps(order).decode()))

    async def list_orders(self, query: OrderQuery) -> Page:
        where, args = [], []
        for column, value in (("customer", query.customer), ("status", query.status)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.since is not None:
            where.append("sort >= ?")
            args.append(since_key(query.since))
        if query.cursor:
            where.append("sort < ?")
            args.append(query.cursor)
        sql = ("SELECT sort, data FROM order_index" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY sort DESC LIMIT ?")
        rows = await self._run(self.store._query, sql, (*args, query.limit + 1))
        page = Page([orjson.loads(data) for _, data in rows[:query.limit]])
        if len(rows) > query.limit:
            page.next = rows[query.limit - 1][0]
        return page

    # -- customers --------------------------------------------------------------

    async def get_customer(self, customer_id: str) -> dict[str, Any] | None:
        rows = await self._run(self.store._query, f"SELECT {COLUMNS} FROM customers WHERE id = ?", (customer_id,))
        return _row(rows[0]) if rows else None

    async def put_customer(self, customer_id: str, profile: dict[str, Any]) -> dict[str, Any]:
        return await self._run(self._tx, lambda db: self._put(db, customer_id, profile))

    async def put_customers(self, profiles: dict[str, dict[str, Any]]) -> None:
        await self._run(self._tx, lambda db: [self._put(db, c, p) for c, p in profiles.items()])

    def _put(self, db: sqlite3.Connection, customer_id: str, profile: dict[str, Any]) -> dict[str, Any]:
        db.execute("INSERT OR IGNORE INTO customers (id) VALUES (?)", (customer_id,))
        for name in ("name", "email", "phone"):
            if name in profile:
                db.execute(f"UPDATE customers SET {name} = ? WHERE id = ?", (profile[name], customer_id))
        if "marketingConsent" in profile:
            db.execute("UPDATE customers SET consent = ? WHERE id = ?",
                       (1 if profile["marketingConsent"] else 0, customer_id))
        return self._reindex(db, customer_id)

    def _reindex(self, db: sqlite3.Connection, customer_id: str) -> dict[str, Any]:
        customer = _row(db.execute(f"SELECT {COLUMNS} FROM customers WHERE id = ?", (customer_id,)).fetchone())
        db.execute("DELETE FROM customer_terms WHERE customer = ?", (customer_id,))
        db.executemany("INSERT OR IGNORE INTO customer_terms VALUES (?, ?)",
                       [(t, customer_id) for t in customer_terms(customer["name"], customer["email"],
                                                                 customer["phone"])])
        return customer

    async def add_purchase(self, purchase: Purchase) -> bool:
        return await self._run(self._tx, lambda db: self._add(db, purchase))

    async def add_purchases(self, purchases: list[Purchase]) -> int:
        return await self._run(self._tx, lambda db: sum(self._add(db, p) for p in purchases))

    def _add(self, db: sqlite3.Connection, p: Purchase) -> bool:
        if db.execute("INSERT OR IGNORE INTO customer_purchases VALUES (?)", (p.order_id,)).rowcount == 0:
            return False
        before = db.execute("SELECT name, email FROM customers WHERE id = ?", (p.customer,)).fetchone()
        if before is None:
            db.execute("INSERT INTO customers (id) VALUES (?)", (p.customer,))
        db.execute("UPDATE customers SET orders = orders + 1, spent = spent + ?,"
                   " last_order_at = max(coalesce(last_order_at, 0), ?),"
                   " name = coalesce(nullif(name, ''), ?), email = coalesce(nullif(email, ''), ?) WHERE id = ?",
                   (p.total, p.at, p.name or None, p.email or None, p.customer))
        db.executemany("INSERT INTO customer_bought VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE"
                       " SET last_at = max(last_at, excluded.last_at)",
                       [("s", sku, p.customer, p.at) for sku in set(p.skus)]
                       + [("c", cat, p.customer, p.at) for cat in set(p.categories)])
        name, email = before or (None, None)
        if (p.name and not name) or (p.email and not email):  # the profile was filled: found by it now
            self._reindex(db, p.customer)
        return True

    async def cancel_purchase(self, purchase: Purchase) -> bool:
        return await self._run(self._tx, lambda db: self._cancel(db, purchase))

    @staticmethod
    def _cancel(db: sqlite3.Connection, p: Purchase) -> bool:
        if db.execute("SELECT 1 FROM customer_purchases WHERE order_id = ?", (p.order_id,)).fetchone() is None:
            return False
        if db.execute("INSERT OR IGNORE INTO customer_cancelled VALUES (?)", (p.order_id,)).rowcount == 0:
            return False
        db.execute("UPDATE customers SET orders = orders - 1, spent = spent - ? WHERE id = ?", (p.total, p.customer))
        return True

    async def search_customers(self, query: CustomerQuery) -> Page:
        return await self._run(self._search, query)

    def _search(self, query: CustomerQuery) -> Page:
        if not query.tokens and bool(query.bought) != (query.category is not None):
            return self._bought(query)
        parts: list[str] = []
        args: list[Any] = []
        for token in query.tokens:
            parts.append("SELECT customer FROM customer_terms WHERE term >= ? AND term < ?")
            args += [token, token + TOP]
        since = query.since if query.since is not None else 0
        if query.bought:
            parts.append("SELECT customer FROM customer_bought WHERE kind = 's' AND value IN"
                         f" ({','.join('?' * len(query.bought))}) AND last_at >= ?")
            args += [*query.bought, since]
        if query.category is not None:
            parts.append("SELECT customer FROM customer_bought WHERE kind = 'c' AND value = ? AND last_at >= ?")
            args += [query.category, since]
        if query.since is not None and not query.bought and query.category is None:
            parts.append("SELECT id FROM customers WHERE last_order_at >= ?")
            args.append(query.since)
        after = query.cursor or ""
        if parts:
            sql = (f"WITH m(id) AS ({' INTERSECT '.join(parts)}) SELECT {COLUMNS} FROM customers"
                   " WHERE id IN (SELECT id FROM m) AND id > ? ORDER BY id LIMIT ?")
        else:
            sql = f"SELECT {COLUMNS} FROM customers WHERE id > ? ORDER BY id LIMIT ?"
        return self._page(query, self.store.db.execute(sql, (*args, after, query.limit + 1)).fetchall())

    def _bought(self, query: CustomerQuery) -> Page:
        """Buyers of some SKUs (or of a category) alone: each value's buyers are stored in customer
        order, so the first page of each, merged, is the first page of all; a best seller with
        60,000 buyers costs what a rare one does."""
        kind, values = ("s", query.bought) if query.bought else ("c", (query.category,))
        one = ("SELECT customer FROM (SELECT customer FROM customer_bought WHERE kind = ? AND value = ?"
               " AND customer > ? AND last_at >= ? ORDER BY customer LIMIT ?)")
        args: list[Any] = []
        for value in values:
            args += [kind, value, query.cursor or "", query.since or 0, query.limit + 1]
        sql = (f"SELECT {COLUMNS} FROM customers WHERE id IN ({' UNION '.join([one] * len(values))})"
               " ORDER BY id LIMIT ?")
        return self._page(query, self.store.db.execute(sql, (*args, query.limit + 1)).fetchall())

    def _page(self, query: CustomerQuery, rows: list[tuple[Any, ...]]) -> Page:
        page = Page([_row(r) for r in rows[:query.limit]])
        if len(rows) > query.limit:
            page.next = page.items[-1]["id"]
        return page
