"""A loaded cart and the connections editing it: membership, the message switches, the edit pipeline and its writes."""
from __future__ import annotations

import asyncio
import enum
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Protocol

from aiohttp import WSCloseCode
from pycrdt import Awareness, merge_updates

from ...crdt import Accepted, CartDoc, Rejected, server_root
from ...crdt.chat import Author
from ...crdt.groups import NO_GROUPS, CheckoutGroups
from ...crdt.pricing import DiscountLookup
from ...crdt.protocol import (
    EMPTY_UPDATE, Kind, ProtocolError, awareness_message, parse, sync_step1, sync_step2, update_message,
)
from ..bus import Bus, CartMessage
from ..catalog import CatalogCache
from ..config import Config
from ..hooks import Edit, Hooks
from ..metrics import NO_METRICS
from ..stock import StockAuthority
from ..store import Store
from .catchup import CatchUp
from .connection import GONE, REJECTED, TOO_FAST, Close, Connection, binary_frame
from .holds import HoldEntries, Holds, hold_entry
from .presence import Presence

log = logging.getLogger("livecart.rooms")


@dataclass(frozen=True, slots=True)
class Answer:
    """Stock decided an edit at once: `update` writes its holds and prices into `server`."""

    update: bytes


class Unanswered(enum.Enum):
    """An edit the server sends no answer to with it."""

    NOTHING_TO_ANSWER = "nothing to answer"  # no line or discount code touched, or `server` unchanged
    IN_BACKGROUND = "in the background"  # holds decided later: a reconcile in flight, or a remote authority


@dataclass(frozen=True)
class Collaborators:
    """What every room of a process works with (given by the registry, not looked up)."""

    config: Config
    store: Store
    bus: Bus
    stock: StockAuthority
    catalog: CatalogCache
    hooks: Hooks
    shop_codes: DiscountLookup  # the shop-wide discount codes a shopper may type
    metrics: Any = NO_METRICS  # the app's figures (server/metrics.py): latencies, decisions, catch-ups
    groups: Callable[[], CheckoutGroups] = lambda: NO_GROUPS  # the shop's checkout-group rules, now


class Host(Protocol):
    """What a room asks of the registry that holds it."""

    def unload_soon(self, room: Room) -> None: ...

    def fail(self, room: Room) -> None: ...


class Room:
    """A loaded cart and the connections editing it."""

    def __init__(self, cart_id: str, cart: CartDoc, last_seq: int, deps: Collaborators, host: Host) -> None:
        self.id, self.cart = cart_id, cart
        self.config, self.store, self.bus, self.stock = deps.config, deps.store, deps.bus, deps.stock
        self.catalog, self.hooks, self.shop_codes, self.groups = deps.catalog, deps.hooks, deps.shop_codes, deps.groups
        self.metrics = deps.metrics
        self._host = host
        self.conns: set[Connection] = set()
        self.catchup = CatchUp(cart_id, last_seq, deps.store, deps.metrics, self._apply_remote)
        self.holds = Holds(cart_id, cart, deps.stock, deps.metrics, self.commit_holds, self.catchup.run)
        self._since_compact = 0
        self._last_write: Awaitable[int] | None = None
        self._unload: asyncio.TimerHandle | None = None
        self.presence = Presence()

    # -- membership ---------------------------------------------------------------

    def join(self, conn: Connection) -> None:
        if self._unload:
            self._unload.cancel()
            self._unload = None
        self.conns.add(conn)
        conn.send(sync_step1(self.cart.state()))
        if self.presence.anyone():
            conn.send(awareness_message(self.presence.encode()))

    def leave(self, conn: Connection) -> None:
        self.conns.discard(conn)
        gone = self.presence.leave(conn)
        if gone:
            self._relay_awareness(gone)
        if not self.conns:
            self.schedule_unload()

    def schedule_unload(self) -> None:
        if self._unload:
            self._unload.cancel()
        self._unload = asyncio.get_running_loop().call_later(
            self.config.room_grace_seconds, self._host.unload_soon, self)

    def broadcast(self, message: bytes, exclude: Connection | None = None) -> None:
        frame = binary_frame(message)
        for conn in self.conns:
            if conn is not exclude:
                conn.send_frame(frame)

    def close_clients(self, code: int, reason: str, which: Callable[[Connection], bool] = lambda c: True) -> None:
        for conn in list(self.conns):
            if which(conn):
                conn.close_soon(code, reason)

    def check_open_for_clients(self) -> None:
        """A merged or closed cart takes no more clients (4409 names where it went)."""
        status = self.cart.status
        if status == "merged":
            raise Close(GONE, f"cart merged into {self.cart.merged_into}")
        if status == "closed":
            raise Close(GONE, "cart closed")

    # -- the message switch ---------------------------------------------------------

    async def receive(self, conn: Connection, frame: bytes) -> None:
        try:
            msg = parse(frame)
        except ProtocolError as exc:
            raise Close(REJECTED, f"not a y-protocols message: {exc}") from None
        if msg.kind is Kind.SYNC_STEP1:
            await self.committed()
            try:
                conn.send(sync_step2(self.cart.diff(msg.payload)))
            except Exception:
                raise Close(REJECTED, "malformed state vector in sync step 1") from None
        elif msg.kind in (Kind.SYNC_STEP2, Kind.UPDATE):
            if msg.payload != EMPTY_UPDATE:
                await self.client_update(conn, msg.payload)
        elif msg.kind is Kind.AWARENESS:
            changed = self.presence.from_client(conn, msg.payload)
            if changed:
                self._relay_awareness(changed)
        elif msg.kind is Kind.QUERY_AWARENESS:
            conn.send(awareness_message(self.presence.encode()))

    # -- the edit pipeline ------------------------------------------------------------

    async def client_update(self, conn: Connection, update: bytes) -> None:
        """A client's edit: validate (and apply) → extensions hear it → decide the server's answer
        → store → relay; holds the answer left to the background follow."""
        accepted = await self.validate(update, conn)
        if accepted.update == EMPTY_UPDATE:
            return  # all of it was known already
        if len(accepted.chat) > 1:
            conn.spend(len(accepted.chat) - 1)
        self.hooks.on_edit(self, Edit(conn.who, accepted.added, accepted.removed, accepted.wants, accepted.chat))
        decided = self.decide(accepted)
        if isinstance(decided, Answer):
            both = merge_updates(accepted.update, decided.update)  # stored and relayed as one update: one row, one apply
            await self._store(both)
            self._relay_answered(conn, both, decided.update)
            return
        await self._store(accepted.update)
        self.broadcast(update_message(accepted.update), exclude=conn)
        if decided is Unanswered.IN_BACKGROUND:  # holds and prices follow the edit
            self.holds.follow(accepted.touched, accepted.wants)

    async def validate(self, update: bytes, conn: Connection | None = None) -> Accepted:
        """Applies a client update to the cart if it may; a rejection closes its sender with 4400
        (the cart unchanged; 4429 for more chat messages than its rate allows). `conn`: the sender,
        whom its chat messages must name (None: it may append none). A rejection this process may be wrong about (a product added in another
        process, updates it has not read yet from the shared log) is judged again once it caught up."""
        self.check_open_for_clients()
        if self.cart.status != "open":
            raise Close(REJECTED, f"cart is {self.cart.status.replace('_', ' ')}: it takes no edits")
        author = Author(conn.who.sub, conn.who.role, conn.chat_budget()) if conn is not None else None
        verdict = self.cart.apply_client_update(update, self.catalog.get, self.config.limits, author)
        if isinstance(verdict, Rejected) and (
                (verdict.sku and await self.catalog.knows(verdict.sku))  # a product just added elsewhere
                or (verdict.missing and await self.catchup.run())):  # this process is behind the shared log
            verdict = self.cart.apply_client_update(update, self.catalog.get, self.config.limits, author)
        if isinstance(verdict, Rejected):
            raise Close(TOO_FAST if verdict.code == "chat_rate" else REJECTED, verdict.reason)
        return verdict

    def decide(self, accepted: Accepted) -> Answer | Unanswered:
        """The server's answer to an edit, when stock can decide at once: the touched lines' holds
        and the pricing that follows, written into `server`. A reconcile in flight keeps its order,
        and a remote authority (Redis) decides asynchronously: their holds follow in the background."""
        touched, wants = accepted.touched, accepted.wants
        if not touched and "discountCodes" not in accepted.meta:
            return Unanswered.NOTHING_TO_ANSWER
        if self.holds.following():
            return Unanswered.IN_BACKGROUND
        decided = self.stock.reserve_now(self.id, wants) if touched else {}  # one want per touched line
        if decided is None:
            return Unanswered.IN_BACKGROUND
        self.metrics.decided(decision.status for decision in decided.values())
        answer = server_root.settle(self.cart, {line_id: hold_entry(decision, wants[line_id])
                                                for line_id, decision in decided.items()},
                                    self.catalog.get, self.shop_codes, self.groups())
        return Answer(answer) if answer else Unanswered.NOTHING_TO_ANSWER

    def _relay_answered(self, sender: Connection, both: bytes, answer: bytes) -> None:
        """The others get the edit with the server's answer to it; the sender, who has the
        edit, gets the answer alone."""
        answer_frame, both_frame = binary_frame(update_message(answer)), binary_frame(update_message(both))
        for conn in self.conns:
            conn.send_frame(answer_frame if conn is sender else both_frame)

    def edited(self, edit: Edit, lines: Iterable[str]) -> None:
        """An edit the server made for `edit.who` and committed (HTTP line edits): the extensions
        hear it as they hear a client's, and the holds of `lines` follow."""
        self.hooks.on_edit(self, edit)
        self.holds.want(lines)

    # -- writes: commit and its family --------------------------------------------------

    async def commit(self, update: bytes) -> None:
        """Stores, then relays to every client, an update a trusted writer applied to the cart
        (`server_root`, a merge, an HTTP edit); an empty one is nothing to do."""
        if update:
            await self._store(update)
            self.broadcast(update_message(update))

    async def commit_holds(self, decisions: HoldEntries) -> None:
        """Writes hold outcomes and the pricing they lead to (`server_root.settle`), committed."""
        try:
            await self.commit(server_root.settle(self.cart, decisions, self.catalog.get, self.shop_codes,
                                                 self.groups()))
        except Close:
            pass  # the room failed and was dropped; its clients reconnect

    async def commit_pricing(self) -> None:
        """Reprices the cart (codes typed, offers made, another process's holds, group rules), committed."""
        await self.commit_holds({})

    async def committed(self) -> None:
        """Waits until everything applied so far is stored (nothing unsaved is ever sent)."""
        if self._last_write is not None:
            try:
                await asyncio.shield(self._last_write)
            except Exception:
                raise Close(WSCloseCode.INTERNAL_ERROR, "storage failed; reconnect") from None

    async def _store(self, update: bytes) -> None:
        """Appends to the cart's log and tells the other processes; a failure drops the room."""
        pending = self._last_write = self.store.append(self.id, update)
        started = time.perf_counter()
        try:
            seq = await pending
            self.metrics.committed(time.perf_counter() - started)
        except Exception as exc:
            log.warning("cart %s: could not persist an update (%s); clients reconnect", self.id, exc)
            self._host.fail(self)
            raise Close(WSCloseCode.INTERNAL_ERROR, "storage failed; reconnect") from None
        self.catchup.mark(seq)
        self.bus.publish_cart(self.id, "update", seq, update)
        self._since_compact += 1
        if self._since_compact >= self.config.compact_every:
            self._since_compact = 0
            await self.compact()

    async def compact(self) -> None:
        await self.committed()
        if self.cart.pending_updates:
            await self.store.compact(self.id, self.cart.compact(), self.catchup.last_seq)

    def busy(self) -> bool:
        """Work in flight that an unload would cut short (holds being decided, a write)."""
        last_write = self._last_write
        return self.holds.busy() or (isinstance(last_write, asyncio.Future) and not last_write.done())

    # -- presence ---------------------------------------------------------------------

    @property
    def awareness(self) -> Awareness:
        return self.presence.awareness

    def _relay_awareness(self, changed: list[int]) -> None:
        update = self.presence.encode(changed)
        # To every client, the sender too: the stock client drops a socket silent for 30 s,
        # and its own renewals (every 15 s, a newer clock) are what keeps it fed.
        self.broadcast(awareness_message(update))
        self.bus.publish_cart(self.id, "awareness", 0, update)
        self.hooks.on_presence(self)

    # -- other processes ---------------------------------------------------------------

    def on_bus(self, msg: CartMessage) -> None:
        """What another process published for this cart: an update it stored, or presence."""
        if msg.kind == "update":
            self.catchup.on_update(msg.seq, msg.payload)
        elif msg.kind == "awareness":
            changed = self.presence.from_remote(msg.payload)
            if changed:
                self.broadcast(awareness_message(self.presence.encode(changed)))
        elif msg.kind == "awareness?":
            local = [cid for conn in self.conns for cid in conn.awareness_ids]
            if local:
                self.bus.publish_cart(self.id, "awareness", 0, self.presence.encode(local))

    def _apply_remote(self, update: bytes) -> None:
        """An update another process stored (from the bus, or caught up from the log)."""
        lines, server = self.cart.apply_trusted(update)
        self.broadcast(update_message(update))
        if lines or server:
            self.holds.reprice_soon()
