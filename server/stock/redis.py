"""The scale-out stock authority: every decision is a Lua script on one SKU's slot, so any number of processes can decide."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Iterable

from redis.exceptions import RedisError

from ..store import HoldRow
from ..store.redis import SET_ON_HAND, Keys, connect
from ..tasks import cancel_and_wait
from . import Decision, HoldKey, HoldListener, Level, LevelListener, StockError, Want

log = logging.getLogger("livecart.stock")

# Keys of one SKU (one slot): KEYS[1] `{s:<sku>}:stock` hash onHand, held;
# KEYS[2] `{s:<sku>}:holds` hash "cart|line" -> "qty|expiresAt"; KEYS[3] `{s:<sku>}:expiry` zset
# "cart|line" scored by expiresAt (ms). Every script returns the SKU's availability and its
# earliest expiry last, so the caller can tell viewers and keep the `due` hint right.
LIB = """
local function level()
  local v = redis.call('HMGET', KEYS[1], 'onHand', 'held')
  return tonumber(v[1]) or 0, tonumber(v[2]) or 0
end
local function available()
  local on_hand, held = level()
  return on_hand - held
end
local function earliest()
  return redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')[2] or false
end
local function get_hold(field)
  local v = redis.call('HGET', KEYS[2], field)
  if not v then return nil end
  local sep = string.find(v, '|', 1, true)
  return tonumber(string.sub(v, 1, sep - 1)), tonumber(string.sub(v, sep + 1))
end
local function drop_hold(field, qty)
  redis.call('HDEL', KEYS[2], field)
  redis.call('ZREM', KEYS[3], field)
  redis.call('HINCRBY', KEYS[1], 'held', -qty)
end
local function put_hold(field, qty, expires)
  redis.call('HSET', KEYS[2], field, qty .. '|' .. expires)
  redis.call('ZADD', KEYS[3], expires, field)
  redis.call('HINCRBY', KEYS[1], 'held', qty)
end
"""

# ARGV: field, qty, till (ms). Makes the line hold exactly qty until at least `till`, from its
# hold and available stock. -> 'kept' | 'held' (changed) | 'short' (unchanged), available, earliest
COVER = LIB + """
local field, qty, till = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local old, old_expires = get_hold(field)
if old == qty and old_expires >= till then return {'kept', available(), earliest()} end
if qty - (old or 0) > available() then return {'short', available(), earliest()} end
if old then drop_hold(field, old) end
put_hold(field, qty, math.max(till, old_expires or 0))
return {'held', available(), earliest()}
"""

# KEYS[4]: the line's sale marker. ARGV: field, qty, marker ttl (ms). Sells qty (the line's hold,
# topped up from available stock) and records the sale with it; a line sold before sells nothing more.
# -> units the line sold (0: not enough), 1 if sold now, available, earliest
SELL = LIB + """
local sold = redis.call('GET', KEYS[4])
if sold then return {tonumber(sold), 0, available(), earliest()} end
local field, qty = ARGV[1], tonumber(ARGV[2])
local old = get_hold(field)
if qty - (old or 0) > available() then return {0, 0, available(), earliest()} end
if old then drop_hold(field, old) end
redis.call('HINCRBY', KEYS[1], 'onHand', -qty)
redis.call('SET', KEYS[4], qty, 'PX', ARGV[3])
return {qty, 1, available(), earliest()}
"""

# ARGV: field, qty, expiresAt for a new hold. -> status, qty, expiresAt, changed, available, earliest
RESERVE = LIB + """
local field, qty = ARGV[1], tonumber(ARGV[2])
local old, old_expires = get_hold(field)
if old == qty then return {'held', qty, old_expires, 0, available(), earliest()} end
local grant = math.min(qty, (old or 0) + available())
if old then drop_hold(field, old) end
if grant <= 0 then
  return {qty > 0 and 'unavailable' or 'released', 0, false, old and 1 or 0, available(), earliest()}
end
put_hold(field, grant, ARGV[3])
return {grant == qty and 'held' or 'partial', grant, ARGV[3], 1, available(), earliest()}
"""

# ARGV: field. -> units released, available, earliest
RELEASE = LIB + """
local qty = get_hold(ARGV[1])
if qty then drop_hold(ARGV[1], qty) end
return {qty or 0, available(), earliest()}
"""

# ARGV: src field, dst field, keep. -> status, qty, expiresAt, available, earliest
TRANSFER = LIB + """
local src, dst, keep = ARGV[1], ARGV[2], tonumber(ARGV[3])
local qty, expires = get_hold(src)
if not qty then return {'no_hold'} end
drop_hold(src, qty)
if dst ~= src then
  local dst_qty, dst_expires = get_hold(dst)
  if dst_qty then
    drop_hold(dst, dst_qty)
    qty, expires = qty + dst_qty, math.max(expires, dst_expires)
  end
end
qty = math.min(keep, qty)
if qty <= 0 then return {'released', 0, false, available(), earliest()} end
put_hold(dst, qty, expires)
return {qty == keep and 'held' or 'partial', qty, expires, available(), earliest()}
"""

# ARGV: field, until (ms). Keeps a hold at least until then. -> 1 if it moved
EXTEND = LIB + """
local qty, expires = get_hold(ARGV[1])
if not qty or expires >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], qty .. '|' .. ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
"""

# ARGV: now (ms), limit. Pops due holds and gives their units back: each hold is popped by
# exactly one script run, however many processes sweep. -> popped fields, available, earliest
EXPIRE = LIB + """
local gone = {}
for _, field in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])) do
  local qty = get_hold(field)
  if qty then
    drop_hold(field, qty)
    table.insert(gone, field)
  else
    redis.call('ZREM', KEYS[3], field)
  end
end
return {gone, available(), earliest()}
"""

# KEYS: the cart's `{c:<cart>}:holds` index (line -> sku). ARGV: line, sku, ttl ms, force.
# Points the line at the SKU and returns where it pointed before; unless forced, it leaves a
# line that points at another SKU alone, so that SKU's hold can be released first.
INDEX = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and old ~= ARGV[2] and ARGV[4] == '0' then return old end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return old
"""

EXPIRE_BATCH = 1000
INDEX_MARGIN_MS = 86_400_000  # the index outlives every hold in it by a day, then tidies itself away
SOLD_TTL_MS = 30 * 86_400_000  # a sale marker outlives any repeat of the payment report that made it


class RedisStock:
    """`StockAuthority` on Redis. On-hand, holds and expiry of a SKU live in its slot and change
    only inside scripts, so concurrent processes never oversell and each hold comes back once.

    Two things live outside a SKU's slot and are therefore only hints, kept safe by their order:

    - `{c:<cart>}:holds` (line -> sku) lets release/sell/holds_of find a line's SKU. It is
      written *before* the SKU script that takes a hold, and is only ever overwritten once the
      line's hold on the old SKU has been released; entries are not removed when holds end (a
      stale entry points at a SKU that no longer holds the line, which the scripts read as
      "nothing held"; the key expires a day after its last hold would have). So a crash between
      the index write and the SKU script leaves at worst a stale entry, never a live hold the
      index misses. Should one be missed anyway (two processes giving one line two different
      SKUs at the same instant), that hold still sits in its SKU's expiry set and comes back to
      stock exactly once when it runs out.
    - `due` (sku -> earliest expiry) tells sweepers which SKUs to look at; it may be earlier
      than the truth (an empty sweep corrects it), never later. Whoever takes a hold lowers it
      (ZADD LT) before and after the SKU script; a sweeper raises it after popping and then
      re-reads the SKU's real earliest expiry and lowers it again, so a hold taken during a
      sweep is never forgotten. What is left: if a sweeper dies between raising and re-reading
      while a hold is being taken on that SKU, that hold expires late, at the next hold taken on
      the SKU (which lowers the hint again).
    """

    def __init__(self, url: str, hold_ttl: float, clock: Callable[[], float] = time.time,
                 sweep_interval: float = 0.2) -> None:
        self.r, prefix = connect(url)
        self.keys = Keys(prefix)
        self.hold_ttl, self.clock, self.sweep_interval = hold_ttl, clock, sweep_interval
        self.hold_listeners: list[HoldListener] = []
        self.level_listeners: list[LevelListener] = []
        self._scripts = {name: self.r.register_script(body) for name, body in (
            ("reserve", RESERVE), ("release", RELEASE), ("cover", COVER), ("sell", SELL), ("transfer", TRANSFER),
            ("extend", EXTEND), ("expire", EXPIRE), ("set_on_hand", SET_ON_HAND), ("index", INDEX))}
        self._sweeper: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.expire_due()  # holds that ran out while no process was sweeping
        except RedisError as exc:
            log.warning("stock: Redis unreachable at start (%s); the sweeper keeps trying", exc)
        self._sweeper = asyncio.ensure_future(self._sweep_forever())

    async def stop(self) -> None:
        if self._sweeper:
            await cancel_and_wait(self._sweeper)  # a single cancel can be lost mid-command (see tasks.py)
            self._sweeper = None
        await self.r.aclose()

    async def _sweep_forever(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.expire_due()
                failing = False
            except RedisError as exc:
                if not failing:  # once per outage, not five times a second
                    log.warning("stock sweep failed: %s", exc)
                failing = True
            except Exception:
                log.exception("stock sweep failed")

    # -- helpers ----------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _sku_keys(self, sku: str) -> list[str]:
        return [self.keys.sku(sku, "stock"), self.keys.sku(sku, "holds"), self.keys.sku(sku, "expiry")]

    async def _run(self, name: str, sku: str, *args: Any) -> list[Any]:
        return await self._scripts[name](self._sku_keys(sku), list(args))

    def _sold_key(self, sku: str, cart_id: str, line_id: str) -> str:
        """The line's sale marker, in the SKU's slot so that a script sells and marks in one step."""
        return self.keys.sku(sku, f"sold:{cart_id}|{line_id}")

    async def _index(self, cart_id: str, line_id: str, sku: str, force: bool = False) -> str | None:
        """Points the line at `sku` (before the SKU script runs) and says where it pointed before."""
        ttl_ms = int(self.hold_ttl * 1000) + INDEX_MARGIN_MS
        old = await self._scripts["index"](
            [self.keys.cart(cart_id, "holds")], [line_id, sku, ttl_ms, "1" if force else "0"])
        return old.decode() if old is not None else None

    async def _line_skus(self, cart_id: str, lines: Iterable[str] | None = None) -> dict[str, str]:
        key = self.keys.cart(cart_id, "holds")
        if lines is None:
            rows = await self.r.hgetall(key)
            return {line.decode(): sku.decode() for line, sku in rows.items()}
        wanted = list(lines)
        skus = await self.r.hmget(key, wanted) if wanted else []
        return {line: sku.decode() for line, sku in zip(wanted, skus) if sku is not None}

    async def _hint(self, sku: str, earliest: bytes | int | None) -> None:
        """Lowers the SKU's `due` hint to `earliest` (never raises it)."""
        if earliest is not None:
            await self.r.zadd(self.keys.plain("due"), {sku: float(earliest)}, lt=True)

    def _tell_levels(self, changed: dict[str, int]) -> None:
        if changed:
            for listener in self.level_listeners:
                listener(changed)

    # -- reads --------------------------------------------------------------------------

    async def levels(self, skus: Iterable[str]) -> dict[str, Level]:
        wanted = list(skus)
        async with self.r.pipeline(transaction=False) as pipe:
            for sku in wanted:
                pipe.hmget(self.keys.sku(sku, "stock"), ["onHand", "held"])
            rows = await pipe.execute()
        return {sku: Level(int(on_hand or 0), int(held or 0)) for sku, (on_hand, held) in zip(wanted, rows)}

    async def holds_of(self, cart_id: str) -> dict[str, HoldRow]:
        line_skus = await self._line_skus(cart_id)
        async with self.r.pipeline(transaction=False) as pipe:
            for line, sku in line_skus.items():
                pipe.hget(self.keys.sku(sku, "holds"), f"{cart_id}|{line}")
            values = await pipe.execute()
        holds = {}
        for (line, sku), value in zip(line_skus.items(), values):
            if value is not None:  # None: a stale index entry
                qty, expires = value.split(b"|")
                holds[line] = HoldRow(cart_id, line, sku, int(qty), int(expires))
        return holds

    # -- commands -----------------------------------------------------------------------

    def reserve_now(self, cart_id: str, wants: dict[str, Want | None]) -> None:
        """Redis decides, over the network: never at once (rooms use `reserve`/`release`)."""
        return None

    async def reserve(self, cart_id: str, line_id: str, sku: str, qty: int) -> Decision:
        """Holds `qty` of `sku` for a line (as much as there is); raising or lowering adjusts the hold."""
        if qty < 0:
            raise StockError("bad_qty", "qty must not be negative")
        field = f"{cart_id}|{line_id}"
        expires = self._now_ms() + int(self.hold_ttl * 1000)
        changed = await self._point(cart_id, line_id, sku, expires)
        status, granted, expires_at, touched, available, earliest = await self._run(
            "reserve", sku, field, qty, expires)
        if touched:
            changed[sku] = available
        if granted:
            await self._hint(sku, earliest)  # again after: a sweep may have raised it meanwhile
        self._tell_levels(changed)
        return Decision(status.decode(), granted, int(expires_at) if expires_at is not None else None)

    async def _point(self, cart_id: str, line_id: str, sku: str, expires: int) -> dict[str, int]:
        """Before a hold of `sku` is taken for the line: the index points the line at it, the `due`
        hint is lowered, and a hold of another SKU goes back first. Returns the levels changed."""
        changed: dict[str, int] = {}
        # The hint goes down before the hold exists too, so a crash right after the script
        # cannot leave the hold unswept (a hint earlier than needed only costs an empty sweep).
        old_sku, _ = await asyncio.gather(self._index(cart_id, line_id, sku), self._hint(sku, expires))
        if old_sku not in (None, sku):  # the line changed SKU: its old hold goes back first
            released, available, _ = await self._run("release", old_sku, f"{cart_id}|{line_id}")
            if released:
                changed[old_sku] = available
            await self._index(cart_id, line_id, sku, force=True)
        return changed

    async def release(self, cart_id: str, line_id: str) -> Decision:
        sku = (await self._line_skus(cart_id, [line_id])).get(line_id)
        if sku is not None:
            released, available, _ = await self._run("release", sku, f"{cart_id}|{line_id}")
            if released:
                self._tell_levels({sku: available})
        return Decision("released", 0)

    async def release_cart(self, cart_id: str) -> None:
        line_skus = await self._line_skus(cart_id)
        results = await asyncio.gather(*(
            self._run("release", sku, f"{cart_id}|{line}") for line, sku in line_skus.items()))
        self._tell_levels({sku: available for sku, (released, available, _)
                           in zip(line_skus.values(), results) if released})

    async def sell(self, cart_id: str, wants: dict[str, Want], until_ms: int) -> dict[str, int]:
        """See `StockAuthority.sell`. SKUs live in different slots, so it takes two steps, line by
        line in order (as the actor): every line not sold before is covered first, and only then
        sold, each sale with its marker. A line whose cover was taken between the steps (nothing
        in livecart touches the holds of a cart awaiting payment) leaves the sale part done: the
        marked lines count as sold when the report is repeated, which finishes it. Two sales of
        one cart at once (the payment's lease keeps them apart) still sell each line once: the
        script checks the marker; a line the later one covered again stays held until it runs out."""
        if any(qty < 1 for _, qty in wants.values()):
            raise StockError("bad_qty", "a line sells at least one unit")
        async with self.r.pipeline(transaction=False) as pipe:  # one GET per slot, as Cluster wants
            for line, (sku, _) in wants.items():
                pipe.get(self._sold_key(sku, cart_id, line))
            markers = await pipe.execute()
        sold = {line: int(qty) for line, qty in zip(wants, markers) if qty is not None}
        fresh = {line: want for line, want in wants.items() if line not in sold}
        changed: dict[str, int] = {}
        short = await self._cover_all(cart_id, fresh, until_ms, changed)
        for line_id, (sku, qty) in ({} if short else fresh).items():
            keys = [*self._sku_keys(sku), self._sold_key(sku, cart_id, line_id)]
            units, now, available, _ = await self._scripts["sell"](keys, [f"{cart_id}|{line_id}", qty, SOLD_TTL_MS])
            if not units:
                short.append(line_id)
            sold[line_id] = units
            if now:
                changed[sku] = available
        self._tell_levels(changed)
        if short:
            raise StockError("out_of_stock", f"not in stock any more: {', '.join(short)}", tuple(short))
        return {line: sold[line] for line in wants}

    async def _cover_all(self, cart_id: str, wants: dict[str, Want], until_ms: int,
                         changed: dict[str, int]) -> list[str]:
        """The first step of `sell`: each line held in full until `until_ms`; returns the short ones."""
        short = []
        for line_id, (sku, qty) in wants.items():
            changed.update(await self._point(cart_id, line_id, sku, until_ms))
            status, available, earliest = await self._run("cover", sku, f"{cart_id}|{line_id}", qty, until_ms)
            if status == b"short":
                short.append(line_id)
            elif status == b"held":
                changed[sku] = available
                await self._hint(sku, earliest)
        return short

    async def set_on_hand(self, sku: str, on_hand: int) -> Level:
        return await self._set(sku, "set", on_hand)

    async def adjust(self, sku: str, delta: int) -> Level:
        return await self._set(sku, "add", delta)

    async def _set(self, sku: str, mode: str, value: int) -> Level:
        status, on_hand, held = await self._scripts["set_on_hand"]([self.keys.sku(sku, "stock")], [mode, value])
        if status == b"negative":
            raise StockError("negative", f"{sku}: onHand cannot be negative")
        if status == b"below_held":
            raise StockError("below_held", f"{sku}: onHand {on_hand} would be below the {held} units held in carts")
        level = Level(on_hand, held)
        self._tell_levels({sku: level.available})
        return level

    async def transfer(self, src: HoldKey, dst: HoldKey, keep: int) -> Decision:
        """Moves a hold to another line, keeping at most `keep` units; the surplus goes back to stock."""
        src_field, dst_field = "|".join(src), "|".join(dst)
        sku = (await self._line_skus(src[0], [src[1]])).get(src[1])
        if sku is None or not await self.r.hexists(self.keys.sku(sku, "holds"), src_field):
            raise StockError("no_hold", f"line {src[1]} holds nothing")
        dst_sku = (await self._line_skus(dst[0], [dst[1]])).get(dst[1])
        if dst_sku not in (None, sku) and await self.r.hexists(self.keys.sku(dst_sku, "holds"), dst_field):
            raise StockError("sku_mismatch", "cannot merge holds of different SKUs")
        await self._index(dst[0], dst[1], sku, force=True)  # dst holds nothing of another SKU
        result = await self._run("transfer", sku, src_field, dst_field, keep)
        if result[0] == b"no_hold":  # released or expired since the check above
            raise StockError("no_hold", f"line {src[1]} holds nothing")
        # No hint to lower: the moved hold expires no sooner than the source hold did.
        status, qty, expires_at, available, _ = result
        self._tell_levels({sku: available})
        return Decision(status.decode(), qty, int(expires_at) if expires_at is not None else None)

    async def extend(self, cart_id: str, until_ms: int) -> None:
        """Keeps every hold of the cart at least until `until_ms` (the payment window)."""
        # Expiries only move later here, so the `due` hint (never later than the truth) stays right.
        line_skus = await self._line_skus(cart_id)
        await asyncio.gather(*(self._run("extend", sku, f"{cart_id}|{line}", until_ms)
                               for line, sku in line_skus.items()))

    async def expire_due(self) -> None:
        """Gives back every hold whose expiry has passed, sweeping only the SKUs the `due` hint names."""
        now = self._now_ms()
        due_key = self.keys.plain("due")
        expired: dict[str, dict[str, Decision]] = {}
        changed: dict[str, int] = {}
        while True:
            skus = [s.decode() for s in await self.r.zrangebyscore(due_key, "-inf", now, 0, EXPIRE_BATCH)]
            for sku in skus:
                while True:
                    gone, available, earliest = await self._run("expire", sku, now, EXPIRE_BATCH)
                    for field in gone:
                        cart_id, line_id = field.decode().split("|", 1)  # cart ids never hold a '|'
                        expired.setdefault(cart_id, {})[line_id] = Decision("expired", 0)
                    if gone:
                        changed[sku] = available
                    if len(gone) < EXPIRE_BATCH:
                        break
                # Raise (or drop) the hint, then re-read: a hold taken meanwhile lowers it again.
                if earliest is None:
                    await self.r.zrem(due_key, sku)
                else:
                    await self.r.zadd(due_key, {sku: float(earliest)})
                first = await self.r.zrange(self.keys.sku(sku, "expiry"), 0, 0, withscores=True)
                if first:
                    await self.r.zadd(due_key, {sku: first[0][1]}, lt=True)
            if len(skus) < EXPIRE_BATCH:
                break
        self._tell_levels(changed)
        for cart_id, decisions in expired.items():
            for hold_listener in self.hold_listeners:
                asyncio.ensure_future(hold_listener(cart_id, decisions))
