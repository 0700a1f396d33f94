"""Webhooks to the host platform: a persisted outbox, a delivery worker, and the cart.abandoned check.

Events (`order.created`, `order.status`, `cart.abandoned`) are written to an outbox in the Store
(records of kind "outbox", so SQLite and Redis alike) by `Webhooks.emit`, and POSTed by the worker
that `Webhooks.start` runs in every server process, on the outbox engine (`outbox.py`) mail shares:

- Body: `{"id", "type", "createdAt", "data"}` (JSON). Headers: `X-Livecart-Signature:
  sha256=<hex HMAC-SHA256 of the exact body bytes with the webhook secret>`, `X-Livecart-Event`
  (the type) and `X-Livecart-Delivery-Attempt` (1, 2, …). Any 2xx is a success; anything else
  (another status, a redirect, no answer within DELIVERY_TIMEOUT, a refused connection) is
  retried after `webhook_retry_base * 2**(attempt-1)` seconds (+0-20 % jitter, at most
  outbox.RETRY_CAP), until the event is `webhook_max_age` seconds old (0: forever); then it is moved to
  the "outbox-dead" records and logged.
- At-least-once, with the event id for de-duplication. Outbox keys are
  `f"{due_ms:013d}|{event_id}|{nonce}"`. To make an attempt, a worker first writes a leased copy
  due at now + lease (so a process dying mid-delivery leaves a copy that comes due again), then
  `take_record`s the key it saw: of several processes one wins and makes the attempt, the others
  delete their copy. After the attempt the lease is replaced by a retry (or deleted on success).
  A crash can repeat an attempt, never lose an event.
- Order: each process delivers one event at a time; of the events that are due, the oldest
  (by creation time) goes first. Retries and several processes can reorder them.

cart.abandoned: `Webhooks.note_activity` (called on every accepted edit: `Webhooks` is an extension of the
rooms) keeps a record of kind "activity" per cart (written at most every few seconds); a periodic check in every process takes
(atomically: one process wins) the record of a cart idle for `abandoned_after` seconds and, if the
cart still has holds, emits `cart.abandoned`. The next edit writes the record again: re-armed.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from ..crdt import CartDoc
from ..crdt.cart import plain
from .clock import now_ms
from .config import Config
from .hooks import Edit, Extension
from .outbox import Outbox, Outcome, backoff  # noqa: F401 (backoff: part of this module's API)
from .stock import StockAuthority
from .store import Store
from .tasks import cancel_and_wait

if TYPE_CHECKING:
    from .sync.registry import Rooms
    from .sync.room import Room

log = logging.getLogger("livecart.webhooks")

OUTBOX = "outbox"
DEAD = "outbox-dead"
ACTIVITY = "activity"
DELIVERY_TIMEOUT = 5.0  # seconds for one POST, connect to last byte
LEASE_MARGIN = 25.0  # a leased event comes due again DELIVERY_TIMEOUT + this later if its worker died
SECRET_FILE = "webhook-secret"


@dataclass
class _State:
    """What one process's worker keeps in memory (per app, so several apps can share a process)."""

    activity: dict[str, tuple[float, str]] = field(default_factory=dict)  # cart -> (last edit, owner)
    written: dict[str, float] = field(default_factory=dict)  # cart -> when its record was last written
    dirty: set[str] = field(default_factory=set)  # carts edited since their record was written
    writes: set[asyncio.Task[None]] = field(default_factory=set)
    flush_every: float = 5.0


def sign(secret: str, body: bytes) -> str:
    """The `X-Livecart-Signature` value for a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def load_or_create_secret(data_dir: Path) -> tuple[str, Path]:
    """The webhook secret kept in the data dir (created on first use), and the file it is in."""
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_text().strip(), path
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return secret, path


def lapsed_lines(doc: CartDoc) -> list[dict[str, Any]]:
    """Lines whose hold expired (they were held, then nobody came back)."""
    with doc.doc.transaction():
        holds = plain(doc.server.get("holds") or {})
        return [{"lineId": line_id, "sku": plain(line).get("sku"), "qty": plain(line).get("qty")}
                for line_id, line in sorted(doc.lines.items())
                if (holds.get(line_id) or {}).get("status") == "expired"]


class Webhooks(Extension):
    """The outbox, its delivery worker and the abandoned-cart check of one app (all off without a URL)."""

    def __init__(self, config: Config, store: Store, stock: StockAuthority, rooms: Rooms) -> None:
        self.config, self.store, self.stock, self.rooms = config, store, stock, rooms
        self._state: _State | None = None  # the worker's, while it runs
        self._tasks: list[asyncio.Future[None]] = []
        self._session: aiohttp.ClientSession | None = None
        # DELIVERY_TIMEOUT and LEASE_MARGIN are read at each attempt (tests shorten them).
        self.outbox = Outbox(store, OUTBOX, self._deliver, dead_kind=DEAD, retry_base=config.webhook_retry_base,
                             max_age=config.webhook_max_age, lease_seconds=lambda: DELIVERY_TIMEOUT + LEASE_MARGIN,
                             name="webhook")

    # -- emitting -------------------------------------------------------------------------------

    async def emit(self, event_type: str, data: dict[str, Any]) -> str:
        """Persists one event in the outbox and returns its id (`evt_…`); a worker delivers it later.

        Nothing is sent from the caller's task: once this returns the event is stored and survives a
        restart. When no webhook URL is configured this is a no-op that stores nothing and returns "".
        """
        if not self.config.webhook_url:
            return ""
        created = now_ms()
        event_id = f"evt_{created:012x}{secrets.token_hex(8)}"
        return await self.outbox.put(event_type, data, event_id, created=created)

    # -- the worker -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Delivers the outbox and checks for abandoned carts (nothing when no URL is set)."""
        config = self.config
        if not config.webhook_url:
            return
        if not config.webhook_secret:
            config.webhook_secret, path = load_or_create_secret(config.data_dir)
            log.warning("webhooks are signed with the secret kept in %s (set LIVECART_WEBHOOK_SECRET "
                        "to choose one; every process must use the same)", path)
        state = self._state = _State(flush_every=min(5.0, max(0.05, config.abandoned_after / 4)))
        self._session = aiohttp.ClientSession()
        self._tasks = [asyncio.ensure_future(self.outbox.run()),
                       asyncio.ensure_future(self._abandoned_loop(state))]

    async def stop(self) -> None:
        state, session = self._state, self._session
        if state is None or session is None:
            return
        await cancel_and_wait(*self._tasks)  # a single cancel can be lost in wait_for (see tasks.py)
        with suppress(Exception):
            await self._flush_activity(state)
        if state.writes:
            await asyncio.gather(*state.writes, return_exceptions=True)
        await session.close()

    # -- delivering ---------------------------------------------------------------------------------

    async def _deliver(self, event: dict[str, Any], attempt: int) -> Outcome:
        assert self._session is not None
        ok, outcome = await self._post(self._session, self.config.webhook_url, self.config.webhook_secret,
                                       event, attempt)
        return Outcome(ok, outcome)

    @staticmethod
    async def _post(session: aiohttp.ClientSession, url: str, secret: str, event: dict[str, Any],
                    attempt: int) -> tuple[bool, str]:
        body = orjson.dumps({"id": event["id"], "type": event["type"], "createdAt": event["createdAt"],
                             "data": event["data"]})
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "livecart-webhooks",
            "X-Livecart-Signature": sign(secret, body),
            "X-Livecart-Event": event["type"],
            "X-Livecart-Delivery-Attempt": str(attempt),
        }
        try:
            async with session.post(url, data=body, headers=headers, allow_redirects=False,
                                    timeout=aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT)) as response:
                if 200 <= response.status < 300:
                    return True, str(response.status)
                return False, f"HTTP {response.status}"
        except asyncio.TimeoutError:
            return False, f"no answer in {DELIVERY_TIMEOUT:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return False, f"{type(exc).__name__}: {exc}"

    # -- cart.abandoned -----------------------------------------------------------------------------

    def on_edit(self, room: Room, edit: Edit) -> None:
        """Every accepted edit of a cart restarts its abandonment clock."""
        self.note_activity(room.id, edit.who.sub)

    def note_activity(self, cart_id: str, owner: str) -> None:
        """Call on every accepted edit of a cart: restarts its abandonment clock (and re-arms it).

        Cheap: memory only, plus one record write per cart every few seconds at most. A no-op when
        webhooks are off.
        """
        state = self._state
        if state is None:
            return
        now = time.time()
        state.activity[cart_id] = (now, owner or state.activity.get(cart_id, (0.0, ""))[1])
        if now - state.written.get(cart_id, 0.0) >= state.flush_every:
            state.written[cart_id] = now
            state.dirty.discard(cart_id)
            task = asyncio.ensure_future(self._write_activity(cart_id, now, state.activity[cart_id][1]))
            state.writes.add(task)
            task.add_done_callback(state.writes.discard)
        else:
            state.dirty.add(cart_id)  # the periodic check writes it within flush_every

    async def _write_activity(self, cart_id: str, at: float, owner: str) -> None:
        after = self.config.abandoned_after
        try:
            await self.store.put_record(ACTIVITY, cart_id, {"owner": owner, "lastEdit": int(at * 1000)},
                                        ttl=2 * after + 24 * 3600)
        except Exception as exc:
            log.warning("cart %s: activity not recorded: %s", cart_id, exc)

    async def _flush_activity(self, state: _State) -> None:
        dirty, state.dirty = state.dirty, set()
        now = time.time()
        for cart_id in dirty:
            if cart_id in state.activity:
                at, owner = state.activity[cart_id]
                state.written[cart_id] = now
                await self._write_activity(cart_id, at, owner)

    async def _abandoned_loop(self, state: _State) -> None:
        while True:
            await asyncio.sleep(state.flush_every)
            try:
                await self._flush_activity(state)
                await self.check_abandoned(state)
            except Exception as exc:  # storage away: next round
                log.warning("abandoned-cart check failed: %s", exc)

    async def _cart_doc(self, cart_id: str) -> CartDoc | None:
        room = self.rooms.rooms.get(cart_id)
        if room is not None:
            return room.cart
        stored = await self.store.load(cart_id)
        return CartDoc(stored.snapshot, stored.updates) if (stored.snapshot or stored.updates) else None

    async def check_abandoned(self, state: _State) -> None:
        """Emits cart.abandoned for each cart idle for `abandoned_after` that still has holds."""
        store, after = self.store, self.config.abandoned_after
        now = time.time()
        for cart_id, record in (await store.list_records(ACTIVITY)).items():
            last = max(record.get("lastEdit", 0) / 1000, state.activity.get(cart_id, (0.0, ""))[0])
            if now - last < after:
                continue
            taken = await store.take_record(ACTIVITY, cart_id)  # of many processes, one goes on
            if taken is None:
                continue
            if taken.get("lastEdit", 0) > record.get("lastEdit", 0):  # edited meanwhile: not idle
                await store.put_record(ACTIVITY, cart_id, taken, ttl=2 * after + 24 * 3600)
                continue
            if state.activity.get(cart_id, (0.0, ""))[0] > last:
                continue  # edited here a moment ago: its record is written again at the next flush
            state.activity.pop(cart_id, None)
            holds = await self.stock.holds_of(cart_id)
            lines = [{"lineId": line_id, "sku": h.sku, "qty": h.qty} for line_id, h in sorted(holds.items())]
            doc = await self._cart_doc(cart_id)
            if doc is None or doc.status != "open":
                continue  # ordered, merged or closed meanwhile: nothing was abandoned
            if not lines:
                # Holds last `hold_ttl` (15 min by default), less than `abandoned_after` (30 min):
                # a shopper who walked away has lines whose holds ran out while the cart sat idle.
                lines = lapsed_lines(doc)
            if not lines:
                continue
            cart = await store.get_cart(cart_id)  # the owner of record, not whoever edited last
            owner = cart.owner if cart else record.get("owner", "")
            event_id = await self.emit("cart.abandoned", {
                "cartId": cart_id, "owner": owner, "lines": lines,
                "holdsUntil": min((h.expires_at for h in holds.values()), default=None)})
            log.info("cart %s abandoned (idle %.0f s with %d held lines): %s", cart_id, now - last, len(lines),
                     event_id)
        # forget carts long idle (their records are gone or will be taken)
        for cart_id in [c for c, (at, _) in state.activity.items() if now - at > after + 60]:
            state.activity.pop(cart_id, None)
        for cart_id in [c for c, at in state.written.items() if now - at > after + 60]:
            state.written.pop(cart_id, None)
