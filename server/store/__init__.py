"""The Store interface every storage backend implements, and how a URL picks one."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
import asyncio
import secrets
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Protocol, Sequence


@dataclass(frozen=True)
class CartRecord:
    """Who a cart belongs to; the cart's content lives in its update log."""

    id: str
    owner: str
    channel: str
    created_at: int  # ms

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["createdAt"] = data.pop("created_at")
        return data


@dataclass(frozen=True)
class HoldRow:
    """Units of a SKU held for one cart line until `expires_at` (ms)."""

    cart_id: str
    line_id: str
    sku: str
    qty: int
    expires_at: int


@dataclass(frozen=True)
class SaleRow:
    """Units of a SKU a cart line sold (on-hand went down by them): kept so a line sells once."""

    cart_id: str
    line_id: str
    sku: str
    qty: int


@dataclass(frozen=True)
class CartLog:
    """What is stored of a cart's document: one snapshot plus the updates appended since."""

    snapshot: bytes
    updates: list[bytes]
    last_seq: int


class Store(Protocol):
    """Durable state. Every method is safe to call from many coroutines at once."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def create_cart(self, cart: CartRecord) -> None: ...
    async def get_cart(self, cart_id: str) -> CartRecord | None: ...
    async def list_carts(self, owner: str | None = None) -> list[CartRecord]: ...

    async def load(self, cart_id: str) -> CartLog:
        """The cart's snapshot and the updates after it (empty for a new cart)."""
    def append(self, cart_id: str, update: bytes) -> Awaitable[int]:
        """Queues one update; the awaitable gives its sequence number once it is on disk.

        Sequence numbers count 1, 2, 3… per cart, so a gap tells a reader it missed one.
        A plain function returning an awaitable, so a caller can hold on to the
        pending write (rooms await it before answering a sync step 1).
        """
    async def load_since(self, cart_id: str, after_seq: int) -> list[tuple[int, bytes]]:
        """(seq, update) for every stored update after `after_seq`: how a process catches up."""
    async def compact(self, cart_id: str, snapshot: bytes, upto_seq: int) -> None:
        """Replaces the snapshot and drops the updates up to `upto_seq`, in one step."""

    # Small JSON records: invites, access grants, kiosk sessions, profiles, orders.
    async def put_record(self, kind: str, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        """Creates or replaces a record; with `ttl` (seconds) it is gone after that."""
    async def get_record(self, kind: str, key: str) -> dict[str, Any] | None: ...
    async def take_record(self, kind: str, key: str) -> dict[str, Any] | None:
        """Reads and deletes in one step: of many callers, one gets it (single-use codes)."""
    async def delete_record(self, kind: str, key: str) -> None: ...
    async def list_records(self, kind: str, prefix: str = "") -> dict[str, dict[str, Any]]:
        """Every live record of a kind whose key starts with `prefix`."""
    async def lock(self, key: str, owner: str, ttl: float) -> bool:
        """Takes a lease on `key` for `ttl` seconds unless someone else holds it."""
    async def unlock(self, key: str, owner: str) -> None:
        """Gives a lease back (only the owner's)."""
    async def hit(self, key: str, window: float) -> int:
        """Counts a hit on `key`; returns the hits in the current `window` seconds (rate limits)."""

    async def import_catalog(self, products: dict[str, dict[str, Any]], on_hand: dict[str, int]) -> None:
        """Writes products and on-hand figures all together or not at all.

        Raises ValueError naming the SKU when on-hand would fall below what carts hold.
        """

    async def put_product(self, sku: str, product: dict[str, Any]) -> None: ...
    async def list_products(self) -> dict[str, dict[str, Any]]: ...


class StockLog(Protocol):
    """Where the embedded stock actor keeps its decisions (the SQLite store is one)."""

    async def load_stock(self) -> tuple[dict[str, int], list[HoldRow]]:
        """On-hand per SKU and every live hold."""
    def save_stock(self, on_hand: dict[str, int], upserts: list[HoldRow],
                   deletes: list[tuple[str, str]], sales: Sequence[SaleRow] = ()) -> Awaitable[None]:
        """Queues one batch of stock decisions; the awaitable is done once it is committed, in
        order with the cart appends around it (a plain function, like `Store.append`)."""
    async def sales_of(self, cart_id: str) -> dict[str, int]:
        """Units each line of the cart sold (lineId -> qty)."""


def is_embedded(url: str) -> bool:
    """An embedded store belongs to one process; a shared one (Redis) to many."""
    return url in ("sqlite", "") or url.startswith("sqlite:")


def open_store(url: str, data_dir: Path, fsync: str = "everysec") -> Store:
    """`sqlite` (a file in the data dir), `sqlite:///path/to/file.db`, or a `redis://`/`rediss://`
    URL (key prefix `livecart:` unless the URL says `?prefix=…`). `fsync` is SQLite's (see
    SqliteStore); Redis follows its own `appendfsync`."""
    from .sqlite import SqliteStore

    if url in ("sqlite", ""):
        return SqliteStore(data_dir / "livecart.db", fsync)
    if url.startswith("sqlite:///"):
        return SqliteStore(Path(url.removeprefix("sqlite:///")), fsync)
    if url.startswith(("redis://", "rediss://")):
        from .redis import RedisStore

        return RedisStore(url)
    if url.startswith("redis+cluster://"):
        from .redis_cluster import RedisClusterStore

        return RedisClusterStore(url)
    raise ValueError(f"unknown store {url!r} (use 'sqlite', a sqlite:/// path, a redis:// or redis+cluster:// URL)")


@asynccontextmanager
async def held_lock(store: Store, key: str, wait: float = 3.0, ttl: float = 30.0) -> AsyncIterator[None]:
    """Runs the block while holding `key` across every process sharing the store.

    The lease runs out after `ttl` so a crashed holder cannot block it for ever;
    raises LockBusy when it could not be had within `wait` seconds.
    """
    owner = secrets.token_hex(8)
    deadline = asyncio.get_running_loop().time() + wait
    while not await store.lock(key, owner, ttl):
        if asyncio.get_running_loop().time() > deadline:
            raise LockBusy(key)
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        await store.unlock(key, owner)


class LockBusy(Exception):
    """Someone else held the lock for longer than we would wait."""
