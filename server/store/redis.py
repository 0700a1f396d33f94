"""The scale-out store: carts, their update logs and the catalog in Redis, with keys laid out for Redis Cluster."""
from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError

from .batching import AppendBatcher
from . import CartLog, CartRecord

TIMEOUT = 2.0  # seconds: while Redis is down a call fails within this, it never hangs
MAX_CONNECTIONS = 64  # per process and client; plenty for one event loop
DEFAULT_PREFIX = "livecart:"


def connect(url: str) -> tuple[aioredis.Redis, str]:
    """A client for `url` and the key prefix, taken from `?prefix=` in the URL (default `livecart:`)."""
    if url.startswith("redis+cluster://"):  # the cluster client speaks the same commands
        from .redis_cluster import connect_cluster

        return connect_cluster(url)  # type: ignore[return-value]
    url, prefix = split_prefix(url)
    # A bounded pool that makes callers wait their turn: redis-py's default pool fails at
    # once past 100 connections, and under load every such failure became a closed socket.
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=TIMEOUT, decode_responses=False,
        socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT,
        # No silent retries: a script that ran but whose reply was lost would run twice
        # (an append logged twice, an adjust applied twice). The caller sees the error instead.
        retry=Retry(NoBackoff(), 0))
    return aioredis.Redis.from_pool(pool), prefix  # the client owns (and closes) its pool


def split_prefix(url: str) -> tuple[str, str]:
    """The URL without `?prefix=`, and the prefix (default `livecart:`)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    prefix = dict(query).get("prefix", DEFAULT_PREFIX)
    return urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "prefix"]))), prefix


class Keys:
    """Key names. `{c:<cart>}` and `{s:<sku>}` are Redis Cluster hash tags: all keys of one cart
    share a slot, all keys of one SKU share a slot, so every script stays on one slot."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def cart(self, cart_id: str, what: str) -> str:
        return f"{self.prefix}{{c:{cart_id}}}:{what}"  # what: rec, log, seq, snap, holds

    def sku(self, sku: str, what: str) -> str:
        return f"{self.prefix}{{s:{sku}}}:{what}"  # what: stock, holds, expiry

    def owner(self, owner: str) -> str:
        return f"{self.prefix}owner:{owner}"

    def plain(self, name: str) -> str:
        return f"{self.prefix}{name}"  # carts, products, due: one key each


# KEYS: stock hash. ARGV: 'set' | 'add', value. Refuses to go negative or below what carts hold.
# Shared by the stock authority (set_on_hand, adjust) and `import_catalog`.
SET_ON_HAND = """
local v = redis.call('HMGET', KEYS[1], 'onHand', 'held')
local on_hand, held = tonumber(v[1]) or 0, tonumber(v[2]) or 0
local target = tonumber(ARGV[2])
if ARGV[1] == 'add' then target = on_hand + target end
if target < 0 then return {'negative', target, held} end
if target < held then return {'below_held', target, held} end
redis.call('HSET', KEYS[1], 'onHand', target, 'held', held)
return {'ok', target, held}
"""

# KEYS: seq counter, log stream. ARGV: the updates, in order. Seqs are consecutive per cart.
APPEND = """
local seq = 0
for i = 1, #ARGV do
  seq = redis.call('INCR', KEYS[1])
  redis.call('XADD', KEYS[2], '0-' .. seq, 'u', ARGV[i])
end
return seq
"""

# KEYS: snapshot hash, log stream. The snapshot and the updates after it, read in one step.
LOAD = """
local snap = redis.call('HMGET', KEYS[1], 'data', 'upto')
local upto = tonumber(snap[2]) or 0
return {snap[1] or '', upto, redis.call('XRANGE', KEYS[2], '0-' .. (upto + 1), '+')}
"""

# KEYS: snapshot hash, log stream, seq counter. ARGV: snapshot, upto_seq.
# An older snapshot never replaces a newer one; the counter never falls behind the snapshot.
COMPACT = """
local upto = tonumber(ARGV[2])
if upto < (tonumber(redis.call('HGET', KEYS[1], 'upto')) or -1) then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'upto', upto)
redis.call('XTRIM', KEYS[2], 'MINID', '0-' .. (upto + 1))
if (tonumber(redis.call('GET', KEYS[3])) or 0) < upto then redis.call('SET', KEYS[3], upto) end
return 1
"""

# KEYS: cart record hash. ARGV: owner, channel, created_at.
CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'channel', ARGV[2], 'created_at', ARGV[3])
return 1
"""


# Records of one kind share a slot ({r:<kind>}): each is a string key with Redis's own TTL, and
# `{r:<kind>}:index` (a zset, all scores 0, so ordered by key) lists them for prefix queries.
# KEYS: index, record. ARGV: key, value, ttl ms (0 = none).
PUT_RECORD = """
if ARGV[3] == '0' then redis.call('SET', KEYS[2], ARGV[2]) else redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) end
redis.call('ZADD', KEYS[1], 0, ARGV[1])
"""

# KEYS: index, record. ARGV: key. Read and delete in one step: one caller gets it.
TAKE_RECORD = """
local value = redis.call('GET', KEYS[2])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return value
"""

# KEYS: index, record. ARGV: key. Drops an index entry whose record has expired (and only then).
PRUNE_RECORD = """
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('ZREM', KEYS[1], ARGV[1]) end
"""

# KEYS: lease. ARGV: owner. Only the owner gives a lease back.
UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
"""

# KEYS: counter. ARGV: window ms. The window starts at the first hit, like the embedded store's.
HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""


def _seq(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[1])


class RedisStore:
    """Many server processes share one Redis. Appends are queued and sent as one pipeline per
    flush (one script call per cart), so a cart's updates are numbered in the order they were
    appended, whatever the number of connections."""

    def __init__(self, url: str) -> None:
        self.r, prefix = connect(url)
        self.keys = Keys(prefix)
        self._append = self.r.register_script(APPEND)
        self._load = self.r.register_script(LOAD)
        self._compact = self.r.register_script(COMPACT)
        self._create = self.r.register_script(CREATE)
        self._set_on_hand = self.r.register_script(SET_ON_HAND)
        self._put_record = self.r.register_script(PUT_RECORD)
        self._take_record = self.r.register_script(TAKE_RECORD)
        self._prune_record = self.r.register_script(PRUNE_RECORD)
        self._hit = self.r.register_script(HIT)
        self._unlock = self.r.register_script(UNLOCK)
        self._appends: AppendBatcher[tuple[str, bytes]] = AppendBatcher(self._write_appends)

    async def open(self) -> None:
        await self.r.ping()  # a wrong URL fails at startup, not at the first edit

    async def close(self) -> None:
        await self._appends.idle()
        await self.r.aclose()

    # -- carts ----------------------------------------------------------------

    async def create_cart(self, cart: CartRecord) -> None:
        # The indexes live in other slots than the record, so they cannot change together.
        # They are written first and only ever added to (NX): a crash in between leaves an
        # index entry without a record, which the listings skip, never a cart nobody can list.
        for index in (self.keys.plain("carts"), self.keys.owner(cart.owner)):
            await self.r.zadd(index, {cart.id: cart.created_at}, nx=True)
        if not await self._create([self.keys.cart(cart.id, "rec")], [cart.owner, cart.channel, cart.created_at]):
            raise ValueError(f"cart {cart.id} already exists")

    async def get_cart(self, cart_id: str) -> CartRecord | None:
        return self._record(cart_id, await self.r.hgetall(self.keys.cart(cart_id, "rec")))

    @staticmethod
    def _record(cart_id: str, row: dict[bytes, bytes]) -> CartRecord | None:
        if not row:
            return None
        return CartRecord(cart_id, row[b"owner"].decode(), row[b"channel"].decode(), int(row[b"created_at"]))

    async def list_carts(self, owner: str | None = None) -> list[CartRecord]:
        index = self.keys.plain("carts") if owner is None else self.keys.owner(owner)
        ids = [i.decode() for i in await self.r.zrange(index, 0, -1)]  # by created_at
        async with self.r.pipeline(transaction=False) as pipe:
            for cart_id in ids:
                pipe.hgetall(self.keys.cart(cart_id, "rec"))
            rows = await pipe.execute()
        records = [self._record(cart_id, row) for cart_id, row in zip(ids, rows)]
        return [r for r in records if r is not None and (owner is None or r.owner == owner)]

    # -- cart documents ---------------------------------------------------------

    async def load(self, cart_id: str) -> CartLog:
        snapshot, upto, entries = await self._load(
            [self.keys.cart(cart_id, "snap"), self.keys.cart(cart_id, "log")])
        updates = [fields[1] for _, fields in entries]  # fields: [b'u', update]
        return CartLog(snapshot, updates, _seq(entries[-1][0]) if entries else upto)

    def append(self, cart_id: str, update: bytes) -> asyncio.Future[int]:
        return self._appends.append((cart_id, update))

    async def _write_appends(self, batch: list[tuple[str, bytes]]) -> list[int | BaseException]:
        """One script call per cart, all in one pipeline (calls on a pool could overtake each other)."""
        by_cart: dict[str, list[int]] = {}  # cart -> positions in the batch
        for i, (cart_id, _) in enumerate(batch):
            by_cart.setdefault(cart_id, []).append(i)
        results = await self._append_all({c: [batch[i][1] for i in at] for c, at in by_cart.items()})
        out: list[int | BaseException] = [0] * len(batch)
        for at, last in zip(by_cart.values(), results):
            for k, i in enumerate(at):  # the script returns the last seq of the cart's run
                out[i] = last if isinstance(last, BaseException) else last - len(at) + 1 + k
        return out

    async def _append_all(self, by_cart: dict[str, list[bytes]]) -> list[Any]:
        calls = [([self.keys.cart(c, "seq"), self.keys.cart(c, "log")], updates)
                 for c, updates in by_cart.items()]
        results = await self._evalsha_pipeline(calls)
        if any(isinstance(r, NoScriptError) for r in results):
            # Redis restarted and forgot the script; a NOSCRIPT call did not run, so it is safe to resend.
            await self.r.script_load(APPEND)
            redo = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            for i, r in zip(redo, await self._evalsha_pipeline([calls[i] for i in redo])):
                results[i] = r
        return results

    async def _evalsha_pipeline(self, calls: list[tuple[list[str], list[bytes]]]) -> list[Any]:
        async with self.r.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                pipe.evalsha(self._append.sha, len(keys), *keys, *args)
            return await pipe.execute(raise_on_error=False)

    async def load_since(self, cart_id: str, after_seq: int) -> list[tuple[int, bytes]]:
        entries = await self.r.xrange(self.keys.cart(cart_id, "log"), f"0-{after_seq + 1}", "+")
        return [(_seq(entry_id), fields[b"u"]) for entry_id, fields in entries]

    async def compact(self, cart_id: str, snapshot: bytes, upto_seq: int) -> None:
        keys = [self.keys.cart(cart_id, what) for what in ("snap", "log", "seq")]
        await self._compact(keys, [snapshot, upto_seq])

    # -- records ------------------------------------------------------------------------

    def _record_keys(self, kind: str, key: str) -> list[str]:
        return [self.keys.plain(f"{{r:{kind}}}:index"), self.keys.plain(f"{{r:{kind}}}:k:{key}")]

    async def put_record(self, kind: str, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        ttl_ms = 0 if ttl is None else max(1, int(ttl * 1000))
        await self._put_record(self._record_keys(kind, key), [key, orjson.dumps(value), ttl_ms])

    async def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        value = await self.r.get(self._record_keys(kind, key)[1])
        return orjson.loads(value) if value is not None else None

    async def take_record(self, kind: str, key: str) -> dict[str, Any] | None:
        value = await self._take_record(self._record_keys(kind, key), [key])
        return orjson.loads(value) if value is not None else None

    async def delete_record(self, kind: str, key: str) -> None:
        await self._take_record(self._record_keys(kind, key), [key])

    async def list_records(self, kind: str, prefix: str = "") -> dict[str, dict[str, Any]]:
        index = self._record_keys(kind, "")[0]
        # 0xff never occurs in UTF-8, so every key starting with `prefix` sorts below prefix + 0xff.
        low, high = (b"[" + prefix.encode(), b"(" + prefix.encode() + b"\xff") if prefix else (b"-", b"+")
        keys = [k.decode() for k in await self.r.zrangebylex(index, low, high)]
        async with self.r.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(self._record_keys(kind, key)[1])
            values = await pipe.execute()
        for key, value in zip(keys, values):
            if value is None:  # expired: its index entry goes too
                await self._prune_record(self._record_keys(kind, key), [key])
        return {key: orjson.loads(value) for key, value in zip(keys, values) if value is not None}

    async def lock(self, key: str, owner: str, ttl: float) -> bool:
        # Redis lets the lease run out by itself: a crashed holder blocks nobody for longer.
        return bool(await self.r.set(self.keys.plain(f"lock:{key}"), owner, nx=True, px=max(1, int(ttl * 1000))))

    async def unlock(self, key: str, owner: str) -> None:
        await self._unlock([self.keys.plain(f"lock:{key}")], [owner])

    async def hit(self, key: str, window: float) -> int:
        return await self._hit([self.keys.plain(f"hit:{key}")], [max(1, int(window * 1000))])

    # -- catalog ------------------------------------------------------------------

    async def put_product(self, sku: str, product: dict[str, Any]) -> None:
        await self.r.hset(self.keys.plain("products"), sku, orjson.dumps(product))

    async def list_products(self) -> dict[str, dict[str, Any]]:
        rows = await self.r.hgetall(self.keys.plain("products"))
        return {sku.decode(): orjson.loads(data) for sku, data in sorted(rows.items())}

    async def import_catalog(self, products: dict[str, dict[str, Any]], on_hand: dict[str, int]) -> None:
        # Each SKU's stock lives in its own slot and Redis Cluster has no cross-slot
        # transaction, so this checks every SKU first and writes only if all pass. What that
        # leaves open: a cart may take a hold between the check and the write. The write
        # re-checks per SKU (never below held), so stock stays sound, but the import then
        # stops half applied: the products and the SKUs written so far stay. Running the
        # import again finishes it.
        skus = list(on_hand)
        async with self.r.pipeline(transaction=False) as pipe:
            for sku in skus:
                pipe.hget(self.keys.sku(sku, "stock"), "held")
            held = [int(h or 0) for h in await pipe.execute()]
        for sku, h in zip(skus, held):
            if on_hand[sku] < 0:
                raise ValueError(f"{sku}: onHand cannot be negative")
            if on_hand[sku] < h:
                raise ValueError(f"{sku}: onHand {on_hand[sku]} is below the {h} units held in carts")
        if products:
            await self.r.hset(self.keys.plain("products"),
                              mapping={sku: orjson.dumps(p) for sku, p in products.items()})
        for sku in skus:
            status, target, h = await self._set_on_hand([self.keys.sku(sku, "stock")], ["set", on_hand[sku]])
            if status != b"ok":
                raise ValueError(f"{sku}: onHand {target} is below the {h} units held in carts"
                                 " (a cart took a hold during the import; run it again)")
