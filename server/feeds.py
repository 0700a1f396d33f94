"""Live JSON feeds: stock per SKU, the shop floor (admin), a customer's own; who reads them and what they are sent."""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Awaitable, Callable, Hashable, Iterable

import orjson

from . import logs
from .bus import Bus
from .clock import now_ms

class Reader:
    """One feed reader's mailbox: `next()` waits for messages; None once the feed is closed.
    `endpoint` (the route it came in by) and `role` (its token's, or "anonymous") are what the
    metrics count connections by (server/metrics.py)."""

    def __init__(self, endpoint: str = "", role: str = "anonymous") -> None:
        self.closed = False
        self.endpoint, self.role = endpoint, role
        self._wake = asyncio.Event()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def next(self) -> list[dict[str, Any]] | None:
        await self._wake.wait()
        self._wake.clear()
        return None if self.closed else self._take()

    def _take(self) -> list[dict[str, Any]]:
        raise NotImplementedError


class Subscriber(Reader):
    """A stock reader. Pending messages are keyed, so a slow reader gets the latest
    value per key instead of a growing backlog: the actor never waits for it."""

    def __init__(self, keys: frozenset[str], endpoint: str = "", role: str = "anonymous") -> None:
        super().__init__(endpoint, role)
        self.keys = keys
        self._pending: dict[Hashable, dict[str, Any] | str] = {}

    def push(self, key: Hashable, message: dict[str, Any] | str) -> None:
        """`message` is a dict, or its JSON already (one encoding for every reader of a fan-out)."""
        self._pending.pop(key, None)  # re-insert: keep arrival order of the latest values
        self._pending[key] = message
        self._wake.set()

    def _take(self) -> list[dict[str, Any] | str]:  # type: ignore[override]
        batch, self._pending = list(self._pending.values()), {}
        return batch


class StockFeed:
    """Who watches which SKU in this process; fans availability changes out to them.

    A change notice (from any process, via the bus) only says which SKUs moved: the
    feed then reads the current level from the stock authority. Notices from several
    processes may arrive out of order, but a read made after the last notice is the
    latest truth, so the last value a viewer gets is always right.
    """

    def __init__(self, read_levels: Callable[[list[str]], Awaitable[dict[str, Any]]] | None = None,
                 count_viewers: Callable[[str], int] | None = None) -> None:
        self._count_viewers = count_viewers  # browsing presence: who views each product (else: who subscribes)
        self.by_sku: dict[str, set[Subscriber]] = {}
        self.subscribers: set[Subscriber] = set()
        self._read_levels = read_levels
        self._stale: set[str] = set()
        self._refreshing: asyncio.Future[None] | None = None

    def changed(self, levels: dict[str, int]) -> None:
        """Bus handler: these SKUs changed somewhere; refresh the ones watched here."""
        if self._read_levels is None:
            self.publish_levels(levels)
            return
        self._stale.update(sku for sku in levels if sku in self.by_sku)
        if self._stale and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.ensure_future(self._refresh())

    async def _refresh(self) -> None:
        assert self._read_levels is not None
        while self._stale:
            skus, self._stale = sorted(self._stale), set()
            try:
                levels = await self._read_levels(skus)
            except Exception:  # the authority is away: the next change notice tries again
                return
            self.publish_levels({sku: level.available for sku, level in levels.items()})

    def subscribe(self, skus: frozenset[str], endpoint: str = "", role: str = "anonymous") -> Subscriber:
        sub = Subscriber(skus, endpoint, role)
        self.subscribers.add(sub)
        for sku in skus:
            self.by_sku.setdefault(sku, set()).add(sub)
        if self._count_viewers is None:
            self.announce_viewers(skus)  # a subscriber is a viewer: everyone's count moved
        else:  # viewers are browsers (server/browsing.py): the newcomer alone needs the counts
            for sku in skus:
                sub.push(("viewers", sku), {"sku": sku, "viewers": self.viewers(sku)})
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        for sku in sub.keys:
            watchers = self.by_sku.get(sku)
            if watchers is not None:
                watchers.discard(sub)
                if not watchers:
                    del self.by_sku[sku]
        if self._count_viewers is None:
            self.announce_viewers(sub.keys)

    def close(self) -> None:
        """Server shutdown: every reader's pump ends."""
        for sub in self.subscribers:
            sub.close()

    def viewers(self, sku: str) -> int:
        if self._count_viewers is not None:
            return self._count_viewers(sku)
        return len(self.by_sku.get(sku, ()))

    def publish_levels(self, available: dict[str, int]) -> None:
        at = now_ms()
        for sku, value in available.items():
            message = orjson.dumps({"sku": sku, "available": value, "at": at}).decode()  # once for all readers
            for sub in self.by_sku.get(sku, ()):
                sub.push(("available", sku), message)

    async def announce_viewers_spread(self, skus: Iterable[str], chunk: int = 100) -> None:
        """`announce_viewers` for a crowd: the readers are woken `chunk` at a time, the loop free
        in between, so what else is waiting (a shop-floor event) is not held up behind thousands."""
        messages = {sku: orjson.dumps({"sku": sku, "viewers": self.viewers(sku)}).decode() for sku in skus}
        readers: dict[Subscriber, list[str]] = {}
        for sku in messages:
            for sub in self.by_sku.get(sku, ()):
                readers.setdefault(sub, []).append(sku)
        for i, (sub, its) in enumerate(readers.items()):
            for sku in its:
                sub.push(("viewers", sku), messages[sku])
            if i % chunk == chunk - 1:
                await asyncio.sleep(0)

    def announce_viewers(self, skus: Iterable[str]) -> None:
        for sku in skus:
            message = orjson.dumps({"sku": sku, "viewers": self.viewers(sku)}).decode()
            for sub in self.by_sku.get(sku, ()):
                sub.push(("viewers", sku), message)


def shop_event(bus: Bus, type_: str, **data: Any) -> None:
    """An event for the shop floor (every admin reader, in every process)."""
    event = {"type": type_, "at": now_ms(), **data}
    logs.shop_event(event)
    bus.publish_event("events", event)


def customer_event(bus: Bus, customer_id: str, type_: str, *, shop: bool = True, **data: Any) -> None:
    """An event for one customer's own feed (and, with `shop`, the shop floor too)."""
    event = {"type": type_, "at": now_ms(), "customerId": customer_id, "shop": shop, **data}
    logs.shop_event(event)
    bus.publish_event("events", event)


SERVICE_RESTART = 1012  # the close code of a feed socket ended by a server shutdown: the client reconnects


def end_code(sub: Reader) -> tuple[int, bytes]:
    """How a feed socket closes: 1012 when the server is going away (its feed was closed), else 1000."""
    return (SERVICE_RESTART, b"server restarting") if sub.closed else (1000, b"")


async def pump(sub: Reader, send: Callable[[str], Awaitable[Any]], gone: Awaitable[Any],
               send_all: Callable[[list[str]], None] | None = None,
               allowed: Callable[[], Awaitable[Any]] | None = None) -> None:
    """Sends a subscriber's messages until the reader is gone or the feed closes; `send_all`
    writes a whole batch at once (a websocket: one write for every frame of it). `allowed` is
    awaited at every wake-up, before anything is sent: its refusal (it raises) ends the pump."""
    gone_task = asyncio.ensure_future(gone)
    try:
        while True:
            batch_task = asyncio.ensure_future(sub.next())
            await asyncio.wait({batch_task, gone_task}, return_when=asyncio.FIRST_COMPLETED)
            if gone_task.done():
                batch_task.cancel()
                return
            batch = batch_task.result()
            if batch is None:
                return
            if allowed is not None:
                await allowed()  # access read now, not at connect: it may have ended since
            encoded = [m if isinstance(m, str) else orjson.dumps(m).decode() for m in batch]
            if send_all is not None:
                send_all(encoded)
                continue
            for message in encoded:
                await send(message)
    except (ConnectionError, RuntimeError):
        pass  # the reader went away mid-send
    finally:
        gone_task.cancel()


def every(seconds: float, call: Callable[[], None]) -> Callable[[], None]:
    """Calls `call` every `seconds` on the running loop; returns what stops it."""
    loop = asyncio.get_running_loop()
    handles: list[asyncio.TimerHandle] = []

    def tick() -> None:
        call()
        handles[0] = loop.call_later(seconds, tick)

    handles.append(loop.call_later(seconds, tick))
    return lambda: handles[0].cancel()


# -- event feeds: /ws/admin, /ws/me and /ws/orders -------------------------------------------

ORDER_EVENTS = frozenset({"order.created", "order.status"})  # what a reader of /ws/orders is sent

EVENT_BACKLOG = 500


class EventSubscriber(Reader):
    """Events cannot be coalesced, so a reader that falls behind loses the oldest and is told
    how many with a `{"type": "gap", "dropped": n}` marker: carts never wait for it."""

    def __init__(self, customer_id: str | None, endpoint: str = "", types: frozenset[str] | None = None,
                 role: str | None = None, reader: str | None = None) -> None:
        # `role`: the reader's token's (staff following a customer's orders); else what its feed implies
        super().__init__(endpoint, role or ("admin" if customer_id is None else "customer"))
        self.customer_id = customer_id  # None: the whole shop (admin)
        self.types = types  # None: every type; else only these (staff following a customer's orders)
        self.reader = reader  # the token's subject, where access can end before the token (the order feed)
        self._queue: deque[dict[str, Any]] = deque()
        self._dropped = 0

    def poke(self) -> None:
        """Its access may have ended: the pump wakes, with nothing new to send, and checks it again."""
        self._wake.set()

    def push(self, event: dict[str, Any]) -> None:
        if len(self._queue) >= EVENT_BACKLOG:
            self._queue.popleft()
            self._dropped += 1
        self._queue.append(event)
        self._wake.set()

    def _take(self) -> list[dict[str, Any]]:
        batch = list(self._queue)
        self._queue.clear()
        if self._dropped:
            batch.insert(0, {"type": "gap", "dropped": self._dropped})
            self._dropped = 0
        return batch


class EventFeed:
    """Admin readers get every shop event; a customer gets the events addressed to them; a reader
    of one customer's orders (staff serving them) gets that customer's order events only."""

    def __init__(self) -> None:
        self.subscribers: set[EventSubscriber] = set()

    def subscribe(self, customer_id: str | None, endpoint: str = "", types: frozenset[str] | None = None,
                  role: str | None = None, reader: str | None = None) -> EventSubscriber:
        sub = EventSubscriber(customer_id, endpoint, types, role, reader)
        self.subscribers.add(sub)
        return sub

    def on_revoked(self, event: dict[str, Any]) -> None:
        """Bus topic "revoke": an identity lost access in some process (a kiosk signed out): its
        readers check theirs again at once, rather than at their next event or periodic check."""
        role, subject = event.get("role"), event.get("sub")
        for sub in self.subscribers:
            if sub.reader is not None and sub.reader == subject and sub.role == role:
                sub.poke()

    def unsubscribe(self, sub: EventSubscriber) -> None:
        self.subscribers.discard(sub)

    def deliver(self, event: dict[str, Any]) -> None:
        """Bus handler: `customerId` set → that customer's readers; `shop` → admin readers."""
        customer = event.get("customerId")
        for sub in self.subscribers:
            if sub.types is not None and event.get("type") not in sub.types:
                continue
            if (sub.customer_id is None and event.get("shop", True)) or (customer and sub.customer_id == customer):
                sub.push(event)

    def close(self) -> None:
        for sub in self.subscribers:
            sub.close()
