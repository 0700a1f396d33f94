"""The embedded stock authority: an actor, the only writer of stock. One task decides reservations in order and persists each batch."""
from __future__ import annotations

import asyncio
import heapq
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable

from ..store import HoldRow, SaleRow, StockLog
from . import Decision, HoldKey, Level, StockError, Want, HoldListener, LevelListener

log = logging.getLogger("livecart.stock")


@dataclass
class _Batch:
    """What one batch of commands changed, written in one store transaction."""

    on_hand: dict[str, int] = field(default_factory=dict)
    upserts: dict[HoldKey, HoldRow] = field(default_factory=dict)
    deletes: set[HoldKey] = field(default_factory=set)
    sales: list[SaleRow] = field(default_factory=list)
    touched_skus: set[str] = field(default_factory=set)
    expired: dict[str, dict[str, Decision]] = field(default_factory=dict)

    def save(self, store: StockLog) -> Awaitable[None] | None:
        """Queues what changed with the store (None: nothing to write)."""
        if not (self.on_hand or self.upserts or self.deletes or self.sales):
            return None
        return store.save_stock(self.on_hand, list(self.upserts.values()), list(self.deletes), self.sales)


class StockActor:
    """Owns on-hand, holds and their expiry; every command goes through one queue.

    Commands are applied in memory in arrival order, then the whole batch is
    committed in one transaction, and only then are callers answered and
    viewers told: a decision nobody has heard of can be lost in a crash, a
    reported one cannot. Expiry uses one heap and one timer, not a task per hold.
    """

    def __init__(self, store: StockLog, hold_ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.store, self.hold_ttl, self.clock = store, hold_ttl, clock
        self.on_hand: dict[str, int] = {}
        self.held: dict[str, int] = {}
        self.holds: dict[HoldKey, HoldRow] = {}
        self._lines: dict[str, set[str]] = {}  # cart -> its lines with a hold (an index of `holds`)
        self._heap: list[tuple[int, str, str]] = []
        self._queue: asyncio.Queue[tuple[Callable[[_Batch], Any], asyncio.Future[Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0  # ms, when the armed timer fires
        self._stale = False  # a write failed: memory is ahead of the store until reloaded
        self._selling = asyncio.Lock()
        self.hold_listeners: list[HoldListener] = []
        self.level_listeners: list[LevelListener] = []

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        await self._load()
        self._task = asyncio.ensure_future(self._run())
        await self.expire_due()  # holds that ran out while the server was down, once

    async def _load(self) -> None:
        self._stale = False
        on_hand, holds = await self.store.load_stock()
        self.on_hand = dict(on_hand)
        self.holds = {(h.cart_id, h.line_id): h for h in holds}
        self.held, self._lines = {}, {}
        for h in holds:
            self.held[h.sku] = self.held.get(h.sku, 0) + h.qty
            self._lines.setdefault(h.cart_id, set()).add(h.line_id)
        self._heap = [(h.expires_at, h.cart_id, h.line_id) for h in holds]
        heapq.heapify(self._heap)

    async def stop(self) -> None:
        if self._timer:
            self._timer.cancel()
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    # -- reads (from memory; every change in it was or is being committed) ----------

    def level(self, sku: str) -> Level:
        return Level(self.on_hand.get(sku, 0), self.held.get(sku, 0))

    async def levels(self, skus: Iterable[str]) -> dict[str, Level]:
        return {sku: self.level(sku) for sku in skus}

    async def holds_of(self, cart_id: str) -> dict[str, HoldRow]:
        return {line: self.holds[(cart_id, line)] for line in self._lines.get(cart_id, ())}

    def _keys_of(self, cart_id: str) -> list[HoldKey]:
        return [(cart_id, line) for line in self._lines.get(cart_id, ())]

    # -- commands -------------------------------------------------------------------

    async def reserve(self, cart_id: str, line_id: str, sku: str, qty: int) -> Decision:
        """Holds `qty` of `sku` for a line (as much as there is); raising or lowering adjusts the hold."""
        return await self._submit(lambda b: self._reserve(b, cart_id, line_id, sku, qty))

    async def release(self, cart_id: str, line_id: str) -> Decision:
        return await self._submit(lambda b: self._release(b, (cart_id, line_id)))

    def reserve_now(self, cart_id: str, wants: dict[str, Want | None]) -> dict[str, Decision] | None:
        """Decides at once, in memory: the actor lives in this process, and a decision is a few
        dictionary operations (a queue and a task per decision cost far more). The batch is
        queued with the store's next group commit, ahead of the cart update the caller appends
        to show it, so nobody hears of a decision before it is durable; viewers hear of the new
        levels once it is committed. Commands already queued are decided after this one."""
        if self._stale:
            return None  # a failed write: the queued path reloads the committed state first
        batch = _Batch()
        decisions = {line_id: self._reserve(batch, cart_id, line_id, *want) if want
                     else self._release(batch, (cart_id, line_id)) for line_id, want in wants.items()}
        saved = batch.save(self.store)
        if saved is not None:
            asyncio.ensure_future(saved).add_done_callback(lambda done: self._saved_now(batch, done))
        return decisions

    def _saved_now(self, batch: _Batch, done: asyncio.Future[None]) -> None:
        if done.cancelled() or done.exception() is not None:
            log.error("stock decisions not persisted: %s; reloading the last committed state",
                      "cancelled" if done.cancelled() else done.exception())
            self._stale = True
            asyncio.ensure_future(self._submit(lambda b: None))  # the actor reloads before it runs
            return
        self._committed(batch)

    async def release_cart(self, cart_id: str) -> None:
        await self._submit(lambda b: [self._release(b, k) for k in self._keys_of(cart_id)])

    async def sell(self, cart_id: str, wants: dict[str, Want], until_ms: int) -> dict[str, int]:
        """See `StockAuthority.sell`: one actor step, so it is all or nothing."""
        async with self._selling:  # one sale at a time: each reads the sales before it (a payment is rare)
            sold = await self.store.sales_of(cart_id)
            return await self._submit(lambda b: self._sell(b, cart_id, dict(wants), sold, until_ms))

    async def set_on_hand(self, sku: str, on_hand: int) -> Level:
        return await self._submit(lambda b: self._set_on_hand(b, sku, on_hand))

    async def adjust(self, sku: str, delta: int) -> Level:
        return await self._submit(lambda b: self._set_on_hand(b, sku, self.on_hand.get(sku, 0) + delta))

    async def transfer(self, src: HoldKey, dst: HoldKey, keep: int) -> Decision:
        """Moves a hold to another line, keeping at most `keep` units; the surplus goes back to stock."""
        return await self._submit(lambda b: self._transfer(b, src, dst, keep))

    async def expire_due(self) -> None:
        await self._submit(self._expire)

    async def extend(self, cart_id: str, until_ms: int) -> None:
        await self._submit(lambda b: self._extend(b, cart_id, until_ms))

    # -- the actor loop -----------------------------------------------------------------

    async def _submit(self, command: Callable[[_Batch], Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((command, future))
        return await future

    async def _run(self) -> None:
        while True:
            items = [await self._queue.get()]
            while not self._queue.empty() and len(items) < 1000:
                items.append(self._queue.get_nowait())
            if self._stale:
                await self._load()
            await self._run_batch(items)

    async def _run_batch(self, items: list[tuple[Callable[[_Batch], Any], asyncio.Future[Any]]]) -> None:
        batch = _Batch()
        results: list[tuple[bool, Any]] = []
        for command, _ in items:
            try:
                results.append((True, command(batch)))
            except StockError as exc:
                results.append((False, exc))
        try:
            saved = batch.save(self.store)
            if saved is not None:
                await saved
        except Exception as exc:
            log.exception("stock batch not persisted; reloading the last committed state")
            await self._load()
            for _, future in items:
                if not future.done():
                    future.set_exception(StockError("storage", f"stock could not be saved: {exc}"))
            return
        for (ok, value), (_, future) in zip(results, items):
            if future.done():
                continue
            future.set_result(value) if ok else future.set_exception(value)
        self._committed(batch)

    def _committed(self, batch: _Batch) -> None:
        """After a batch is durable: the expiry timer, then viewers and carts are told."""
        self._arm_timer()
        if batch.touched_skus:
            changed = {sku: self.level(sku).available for sku in batch.touched_skus}
            for level_listener in self.level_listeners:
                level_listener(changed)
        for cart_id, decisions in batch.expired.items():
            for hold_listener in self.hold_listeners:
                asyncio.ensure_future(hold_listener(cart_id, decisions))

    def _arm_timer(self) -> None:
        """One timer, for the earliest live expiry; left alone when that has not changed."""
        while self._heap and self._outdated(self._heap[0]):
            heapq.heappop(self._heap)
        first = self._heap[0][0] if self._heap else 0
        if self._timer and first == self._timer_at:
            return
        if self._timer:
            self._timer.cancel()
            self._timer = None
        if first:
            self._timer_at = first
            self._timer = asyncio.get_running_loop().call_later(max(0.0, first / 1000 - self.clock()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        asyncio.ensure_future(self.expire_due())

    def _outdated(self, entry: tuple[int, str, str]) -> bool:
        hold = self.holds.get((entry[1], entry[2]))
        return hold is None or hold.expires_at != entry[0]

    # -- state changes (run inside the actor, synchronously) ---------------------------

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _put_hold(self, b: _Batch, hold: HoldRow) -> None:
        key = (hold.cart_id, hold.line_id)
        self.holds[key] = hold
        self._lines.setdefault(hold.cart_id, set()).add(hold.line_id)
        self.held[hold.sku] = self.held.get(hold.sku, 0) + hold.qty
        b.upserts[key] = hold
        b.deletes.discard(key)
        b.touched_skus.add(hold.sku)
        heapq.heappush(self._heap, (hold.expires_at, hold.cart_id, hold.line_id))
        if len(self._heap) > 2 * len(self.holds) + 1024:
            # Each renewal leaves its old entry behind until it would have expired; a busy
            # cart renews many times per TTL, so drop them now and then rather than keep them.
            self._heap = [(h.expires_at, h.cart_id, h.line_id) for h in self.holds.values()]
            heapq.heapify(self._heap)

    def _drop_hold(self, b: _Batch, key: HoldKey) -> HoldRow | None:
        hold = self.holds.pop(key, None)
        if hold is None:
            return None
        lines = self._lines[key[0]]
        lines.discard(key[1])
        if not lines:
            del self._lines[key[0]]
        self.held[hold.sku] -= hold.qty
        b.upserts.pop(key, None)
        b.deletes.add(key)
        b.touched_skus.add(hold.sku)
        return hold

    def _reserve(self, b: _Batch, cart_id: str, line_id: str, sku: str, qty: int) -> Decision:
        if qty < 0:
            raise StockError("bad_qty", "qty must not be negative")
        key = (cart_id, line_id)
        old = self.holds.get(key)
        if old and old.sku == sku and old.qty == qty:
            return Decision("held", qty, old.expires_at)  # nothing changed: the expiry stands
        current = old.qty if old and old.sku == sku else 0
        grant = min(qty, current + self.level(sku).available)
        if old:
            self._drop_hold(b, key)
        if grant <= 0:
            return Decision("unavailable" if qty else "released", 0)
        expires = self._now_ms() + int(self.hold_ttl * 1000)
        self._put_hold(b, HoldRow(cart_id, line_id, sku, grant, expires))
        return Decision("held" if grant == qty else "partial", grant, expires)

    def _release(self, b: _Batch, key: HoldKey) -> Decision:
        self._drop_hold(b, key)
        return Decision("released", 0)

    def _sell(self, b: _Batch, cart_id: str, wants: dict[str, Want], sold: dict[str, int],
              until_ms: int) -> dict[str, int]:
        if any(qty < 1 for _, qty in wants.values()):
            raise StockError("bad_qty", "a line sells at least one unit")
        fresh = {line_id: want for line_id, want in wants.items() if line_id not in sold}
        short = tuple(line_id for line_id, (sku, qty) in fresh.items()
                      if not self._cover(b, (cart_id, line_id), sku, qty, until_ms))
        if short:  # the batch keeps what was covered: those lines stay held for the payment window
            raise StockError("out_of_stock", f"not in stock any more: {', '.join(short)}", short)
        for line_id, (sku, qty) in fresh.items():
            self._drop_hold(b, (cart_id, line_id))
            self.on_hand[sku] -= qty
            b.on_hand[sku] = self.on_hand[sku]
            b.sales.append(SaleRow(cart_id, line_id, sku, qty))
            sold[line_id] = qty
        return {line_id: sold[line_id] for line_id in wants}

    def _cover(self, b: _Batch, key: HoldKey, sku: str, qty: int, until_ms: int) -> bool:
        """Makes the line hold exactly `qty` of `sku` until at least `until_ms`, from its hold and
        available stock; False (the hold left as it was) when there is not enough."""
        hold = self.holds.get(key)
        if hold is not None and hold.sku != sku:
            self._drop_hold(b, key)  # another SKU's units go back first, as a reserve does
            hold = None
        if hold is not None and hold.qty == qty and hold.expires_at >= until_ms:
            return True
        if qty - (hold.qty if hold else 0) > self.level(sku).available:
            return False
        if hold is not None:
            self._drop_hold(b, key)
        self._put_hold(b, HoldRow(key[0], key[1], sku, qty, max(until_ms, hold.expires_at if hold else 0)))
        return True

    def _set_on_hand(self, b: _Batch, sku: str, on_hand: int) -> Level:
        held = self.held.get(sku, 0)
        if on_hand < 0:
            raise StockError("negative", f"{sku}: onHand cannot be negative")
        if on_hand < held:
            raise StockError("below_held", f"{sku}: onHand {on_hand} would be below the {held} units held in carts")
        self.on_hand[sku] = on_hand
        b.on_hand[sku] = on_hand
        b.touched_skus.add(sku)
        return self.level(sku)

    def _transfer(self, b: _Batch, src: HoldKey, dst: HoldKey, keep: int) -> Decision:
        hold, existing = self.holds.get(src), self.holds.get(dst)
        if hold is None:
            raise StockError("no_hold", f"line {src[1]} holds nothing")
        if existing and existing.sku != hold.sku:
            raise StockError("sku_mismatch", "cannot merge holds of different SKUs")
        self._drop_hold(b, src)
        if existing:
            self._drop_hold(b, dst)
        qty = min(keep, hold.qty + (existing.qty if existing else 0))
        if qty <= 0:
            return Decision("released", 0)
        expires = max(hold.expires_at, existing.expires_at if existing else 0)
        self._put_hold(b, HoldRow(dst[0], dst[1], hold.sku, qty, expires))
        return Decision("held" if qty == keep else "partial", qty, expires)

    def _extend(self, b: _Batch, cart_id: str, until_ms: int) -> None:
        for key in self._keys_of(cart_id):
            hold = self.holds[key]
            if hold.expires_at < until_ms:
                self._drop_hold(b, key)
                self._put_hold(b, HoldRow(hold.cart_id, hold.line_id, hold.sku, hold.qty, until_ms))

    def _expire(self, b: _Batch) -> None:
        now = self._now_ms()
        while self._heap and self._heap[0][0] <= now:
            expires_at, cart_id, line_id = heapq.heappop(self._heap)
            hold = self.holds.get((cart_id, line_id))
            if hold is None or hold.expires_at != expires_at:
                continue  # released or renewed since: nothing to give back
            self._drop_hold(b, (cart_id, line_id))
            b.expired.setdefault(cart_id, {})[line_id] = Decision("expired", 0)
