"""The embedded store: one SQLite file, one writer thread, appends committed in groups."""
from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence, TypeVar, Union

import orjson

from . import CartLog, CartRecord, HoldRow, SaleRow
from .batching import AppendBatcher, Retry, TickBatcher

T = TypeVar("T")
log = logging.getLogger("livecart.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS carts (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, channel TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS carts_owner ON carts(owner);
CREATE TABLE IF NOT EXISTS cart_updates (
    cart_id TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (cart_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cart_snapshots (
    cart_id TEXT PRIMARY KEY, data BLOB NOT NULL, upto_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS products (sku TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires_at REAL,
    PRIMARY KEY (kind, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS locks (key TEXT PRIMARY KEY, owner TEXT NOT NULL, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS hits (key TEXT PRIMARY KEY, window_start REAL NOT NULL, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, on_hand INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS holds (
    cart_id TEXT NOT NULL, line_id TEXT NOT NULL, sku TEXT NOT NULL, qty INTEGER NOT NULL,
    expires_at INTEGER NOT NULL, PRIMARY KEY (cart_id, line_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sales (
    cart_id TEXT NOT NULL, line_id TEXT NOT NULL, sku TEXT NOT NULL, qty INTEGER NOT NULL,
    PRIMARY KEY (cart_id, line_id)) WITHOUT ROWID;
"""


@dataclass
class StockWrite:
    """One stock batch (see StockLog.save_stock), committed with the cart appends around it."""

    on_hand: dict[str, int]
    upserts: list[HoldRow]
    deletes: list[tuple[str, str]]
    sales: list[SaleRow]


Write = Union[tuple[str, bytes], StockWrite]  # a cart append (cartId, update), or stock


FSYNC_MODES = ("everysec", "always")
BUSY_TIMEOUT_MS = 5000  # how long the thread's connection waits for a lock held elsewhere


class SqliteStore:
    """Cart appends and stock batches (the log) are written by their own connection; everything
    else (loads, records, compaction) runs on one thread, so the event loop never waits on it.

    `fsync="everysec"` (the default, as Redis's `appendfsync everysec`): WAL with
    synchronous=NORMAL. The log is committed on the event loop's thread, one transaction for
    whatever arrived in one turn of the loop, and each commit is in the OS before `append`
    returns: a crash or SIGKILL of the server loses nothing it relayed. A checkpoint every
    second (on the thread) fsyncs the WAL, so a power cut or kernel crash loses at most the
    last second, which clients still hold and send again when they resync.
    `fsync="always"`: synchronous=FULL and the log is committed on the thread, each group
    commit fsynced before `append` returns (a power cut loses nothing; each commit waits for
    the disk).
    """

    def __init__(self, path: Path, fsync: str = "everysec", checkpoint_seconds: float = 1.0,
                 restart_frames: int = 8192) -> None:
        if fsync not in FSYNC_MODES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_MODES)}, not {fsync!r}")
        self.path, self.fsync, self.checkpoint_seconds = path, fsync, checkpoint_seconds
        self.restart_frames = restart_frames  # a WAL this long (32 MiB of 4 KiB pages) starts over
        self._on_loop = fsync == "everysec"  # the log is written on the event loop's thread
        self._db: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._writes: AppendBatcher[Write] | TickBatcher[Write] = (
            TickBatcher(self._write_now) if self._on_loop
            else AppendBatcher(lambda batch: self._run(self._write_batch, batch)))
        self._next_seq: dict[str, int] = {}  # per cart; touched only by the log writer
        self._unsynced = False  # the log has commits the last checkpoint has not fsynced
        self._checkpointer: asyncio.Task[None] | None = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._run(self._connect)
        if self._on_loop:
            self._checkpointer = asyncio.ensure_future(self._checkpoint_every(self.checkpoint_seconds))

    def _connect(self) -> None:
        synchronous = "NORMAL" if self._on_loop else "FULL"
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                             timeout=BUSY_TIMEOUT_MS / 1000)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.executescript(SCHEMA)
        # On the loop, the log writer never waits for a lock (TickBatcher retries instead) and
        # never checkpoints (that fsyncs): the thread does, every second.
        writer = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                 timeout=0 if self._on_loop else BUSY_TIMEOUT_MS / 1000)
        writer.execute(f"PRAGMA synchronous={synchronous}")
        if self._on_loop:
            writer.execute("PRAGMA wal_autocheckpoint=0")
        self._db, self._writer = db, writer

    async def _checkpoint_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            if self._unsynced:
                self._unsynced = False
                try:
                    await self._checkpoint()
                except sqlite3.Error as exc:
                    self._unsynced = True
                    log.warning("WAL checkpoint failed (retried in %.0f s): %s", seconds, exc)

    async def _checkpoint(self) -> None:
        """Syncs the WAL and copies it into the database; starts the WAL over when it is long.

        With synchronous=NORMAL a checkpoint fsyncs the WAL first: this is the every-second
        sync, and it runs while the log writer goes on. But under constant writes a commit
        always lands during the checkpoint, so the WAL is never wholly copied and never starts
        over: it would grow for good. Once it is long, a second pass copies what came during
        the first, and a last one (RESTART), with the writer held back for it (appends queue,
        the loop runs on), copies the few frames left and lets the next commit start over.
        """
        frames = await self._run(self._wal_checkpoint, "PASSIVE")
        if frames < self.restart_frames:
            return
        await self._run(self._wal_checkpoint, "PASSIVE")
        assert isinstance(self._writes, TickBatcher)
        self._writes.pause()
        try:
            await self._run(self._restart_wal)
        finally:
            self._writes.resume()

    def _restart_wal(self) -> None:
        # RESTART waits for readers; another process's reader (an admin's sqlite3 shell) must not
        # hold our writes back for the whole busy timeout: give up after 100 ms, retry later.
        self.db.execute("PRAGMA busy_timeout=100")
        try:
            self._wal_checkpoint("RESTART")
        finally:
            self.db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def _wal_checkpoint(self, mode: str) -> int:
        """Runs a checkpoint; returns the frames the WAL holds."""
        return int(self.db.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()[1])

    async def close(self) -> None:
        if self._checkpointer is not None:  # first: a checkpoint may be holding writes back
            self._checkpointer.cancel()
            await asyncio.gather(self._checkpointer, return_exceptions=True)
            self._checkpointer = None
        await self._writes.idle()
        if self._db is not None:
            await self._run(self._close_connections)
        self._thread.shutdown(wait=True)

    def _close_connections(self) -> None:
        assert self._db is not None and self._writer is not None
        self._writer.close()
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()
        self._db = self._writer = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    @property
    def writer(self) -> sqlite3.Connection:
        if self._writer is None:
            raise RuntimeError("store is not open")
        return self._writer

    # -- carts ----------------------------------------------------------------

    async def create_cart(self, cart: CartRecord) -> None:
        await self._run(self._exec, "INSERT INTO carts VALUES (?, ?, ?, ?)",
                        (cart.id, cart.owner, cart.channel, cart.created_at))

    def _exec(self, sql: str, args: tuple[Any, ...]) -> None:
        self.db.execute(sql, args)

    async def get_cart(self, cart_id: str) -> CartRecord | None:
        rows = await self._run(self._query, "SELECT * FROM carts WHERE id = ?", (cart_id,))
        return CartRecord(*rows[0]) if rows else None

    async def list_carts(self, owner: str | None = None) -> list[CartRecord]:
        if owner is None:
            rows = await self._run(self._query, "SELECT * FROM carts ORDER BY created_at", ())
        else:
            rows = await self._run(
                self._query, "SELECT * FROM carts WHERE owner = ? ORDER BY created_at", (owner,))
        return [CartRecord(*row) for row in rows]

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, args).fetchall()

    # -- cart documents ---------------------------------------------------------

    async def load(self, cart_id: str) -> CartLog:
        return await self._run(self._load, cart_id)

    def _load(self, cart_id: str) -> CartLog:
        db = self.db
        db.execute("BEGIN")
        try:
            row = db.execute(
                "SELECT data, upto_seq FROM cart_snapshots WHERE cart_id = ?", (cart_id,)).fetchone()
            snapshot, upto = (bytes(row[0]), row[1]) if row else (b"", 0)
            rows = db.execute(
                "SELECT seq, data FROM cart_updates WHERE cart_id = ? AND seq > ? ORDER BY seq",
                (cart_id, upto)).fetchall()
        finally:
            db.execute("COMMIT")
        last = rows[-1][0] if rows else upto
        return CartLog(snapshot, [bytes(r[1]) for r in rows], last)

    def append(self, cart_id: str, update: bytes) -> asyncio.Future[int]:
        return self._writes.append((cart_id, update))

    def _write_now(self, batch: list[Write]) -> list[int | None]:
        """The log writer on the loop's thread: a busy database means try again, never wait."""
        try:
            return self._write_batch(batch)
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY:
                raise Retry() from None
            raise

    def _write_batch(self, batch: list[Write]) -> list[int | None]:
        """One transaction: the appends get consecutive seqs per cart; stock writes give None."""
        db = self.writer
        db.execute("BEGIN IMMEDIATE")
        rows, results = [], []
        try:
            for write in batch:
                if isinstance(write, StockWrite):
                    self._write_stock(db, write)
                    results.append(None)
                    continue
                cart_id, update = write
                seq = self._next_seq.get(cart_id) or self._last_seq(cart_id) + 1
                self._next_seq[cart_id] = seq + 1
                rows.append((cart_id, seq, update))
                results.append(seq)
            db.executemany("INSERT INTO cart_updates VALUES (?, ?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._next_seq.clear()  # recount from disk next time
            raise
        self._unsynced = True
        return results

    def _last_seq(self, cart_id: str) -> int:
        row = self.writer.execute(
            "SELECT MAX(m) FROM (SELECT MAX(seq) AS m FROM cart_updates WHERE cart_id = ?"
            " UNION ALL SELECT upto_seq FROM cart_snapshots WHERE cart_id = ?)", (cart_id, cart_id)).fetchone()
        return row[0] or 0

    async def load_since(self, cart_id: str, after_seq: int) -> list[tuple[int, bytes]]:
        rows = await self._run(
            self._query, "SELECT seq, data FROM cart_updates WHERE cart_id = ? AND seq > ? ORDER BY seq",
            (cart_id, after_seq))
        return [(seq, bytes(data)) for seq, data in rows]

    async def compact(self, cart_id: str, snapshot: bytes, upto_seq: int) -> None:
        await self._run(self._compact, cart_id, snapshot, upto_seq)

    def _compact(self, cart_id: str, snapshot: bytes, upto_seq: int) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO cart_snapshots VALUES (?, ?, ?) ON CONFLICT(cart_id) DO UPDATE"
                " SET data = excluded.data, upto_seq = excluded.upto_seq"
                " WHERE excluded.upto_seq >= cart_snapshots.upto_seq",
                (cart_id, snapshot, upto_seq))
            db.execute("DELETE FROM cart_updates WHERE cart_id = ? AND seq <= ?", (cart_id, upto_seq))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # -- records ----------------------------------------------------------------------------

    async def put_record(self, kind: str, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        expires = time.time() + ttl if ttl is not None else None
        await self._run(self._exec, "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?)",
                        (kind, key, orjson.dumps(value).decode(), expires))

    async def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        rows = await self._run(
            self._query, "SELECT value FROM records WHERE kind = ? AND key = ?"
            " AND (expires_at IS NULL OR expires_at > ?)", (kind, key, time.time()))
        return orjson.loads(rows[0][0]) if rows else None

    async def take_record(self, kind: str, key: str) -> dict[str, Any] | None:
        return await self._run(self._take, kind, key)

    def _take(self, kind: str, key: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "DELETE FROM records WHERE kind = ? AND key = ? RETURNING value, expires_at", (kind, key)).fetchone()
        if row is None or (row[1] is not None and row[1] <= time.time()):
            return None
        return orjson.loads(row[0])

    async def delete_record(self, kind: str, key: str) -> None:
        await self._run(self._exec, "DELETE FROM records WHERE kind = ? AND key = ?", (kind, key))

    async def list_records(self, kind: str, prefix: str = "") -> dict[str, dict[str, Any]]:
        rows = await self._run(
            self._query, "SELECT key, value FROM records WHERE kind = ? AND key >= ? AND key < ?"
            " AND (expires_at IS NULL OR expires_at > ?) ORDER BY key",
            (kind, prefix, prefix + "\U0010ffff", time.time()))
        return {key: orjson.loads(value) for key, value in rows}

    async def lock(self, key: str, owner: str, ttl: float) -> bool:
        now = time.time()
        rows = await self._run(
            self._query, "INSERT INTO locks VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE"
            " SET owner = excluded.owner, until = excluded.until WHERE locks.until <= ? RETURNING owner",
            (key, owner, now + ttl, now))
        return bool(rows)

    async def unlock(self, key: str, owner: str) -> None:
        await self._run(self._exec, "DELETE FROM locks WHERE key = ? AND owner = ?", (key, owner))

    async def hit(self, key: str, window: float) -> int:
        return await self._run(self._hit, key, window)

    def _hit(self, key: str, window: float) -> int:
        now = time.time()
        row = self.db.execute(
            "INSERT INTO hits VALUES (?, ?, 1) ON CONFLICT(key) DO UPDATE SET"
            " count = CASE WHEN window_start > ? THEN count + 1 ELSE 1 END,"
            " window_start = CASE WHEN window_start > ? THEN window_start ELSE ? END"
            " RETURNING count", (key, now, now - window, now - window, now)).fetchone()
        return int(row[0])

    # -- stock ----------------------------------------------------------------------------

    async def load_stock(self) -> tuple[dict[str, int], list[HoldRow]]:
        stock = await self._run(self._query, "SELECT sku, on_hand FROM stock", ())
        holds = await self._run(self._query, "SELECT * FROM holds", ())
        return dict(stock), [HoldRow(*row) for row in holds]

    def save_stock(self, on_hand: dict[str, int], upserts: list[HoldRow],
                   deletes: list[tuple[str, str]], sales: Sequence[SaleRow] = ()) -> Awaitable[None]:
        return self._writes.append(StockWrite(on_hand, upserts, deletes, list(sales)))

    async def sales_of(self, cart_id: str) -> dict[str, int]:
        rows = await self._run(self._query, "SELECT line_id, qty FROM sales WHERE cart_id = ?", (cart_id,))
        return dict(rows)

    def _write_stock(self, db: sqlite3.Connection, write: StockWrite) -> None:
        # Most batches are one hold renewed: skip the statements with nothing to do.
        if write.on_hand:
            db.executemany("INSERT INTO stock VALUES (?, ?) ON CONFLICT(sku) DO UPDATE"
                           " SET on_hand = excluded.on_hand", write.on_hand.items())
        if write.deletes:
            db.executemany("DELETE FROM holds WHERE cart_id = ? AND line_id = ?", write.deletes)
        if write.upserts:
            db.executemany("INSERT OR REPLACE INTO holds VALUES (?, ?, ?, ?, ?)",
                           [(h.cart_id, h.line_id, h.sku, h.qty, h.expires_at) for h in write.upserts])
        if write.sales:
            db.executemany("INSERT INTO sales VALUES (?, ?, ?, ?)",
                           [(s.cart_id, s.line_id, s.sku, s.qty) for s in write.sales])

    # -- catalog ------------------------------------------------------------------

    async def put_product(self, sku: str, product: dict[str, Any]) -> None:
        await self._run(
            self._exec,
            "INSERT INTO products VALUES (?, ?) ON CONFLICT(sku) DO UPDATE SET data = excluded.data",
            (sku, orjson.dumps(product).decode()))

    async def import_catalog(self, products: dict[str, dict[str, Any]], on_hand: dict[str, int]) -> None:
        await self._run(self._import, products, on_hand)

    def _import(self, products: dict[str, dict[str, Any]], on_hand: dict[str, int]) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            held = dict(db.execute("SELECT sku, SUM(qty) FROM holds GROUP BY sku").fetchall())
            for sku, value in on_hand.items():
                if value < held.get(sku, 0):
                    raise ValueError(f"{sku}: onHand {value} is below the {held[sku]} units held in carts")
            db.executemany(
                "INSERT INTO products VALUES (?, ?) ON CONFLICT(sku) DO UPDATE SET data = excluded.data",
                [(sku, orjson.dumps(p).decode()) for sku, p in products.items()])
            db.executemany("INSERT INTO stock VALUES (?, ?) ON CONFLICT(sku) DO UPDATE"
                           " SET on_hand = excluded.on_hand", on_hand.items())
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def list_products(self) -> dict[str, dict[str, Any]]:
        rows = await self._run(self._query, "SELECT sku, data FROM products ORDER BY sku", ())
        return {sku: orjson.loads(data) for sku, data in rows}
