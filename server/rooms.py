"""Rooms: one per cart, loaded on first connection. Per client update: validate → persist → apply → relay."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Iterable

from aiohttp import WSCloseCode, WSMsgType, web
from pycrdt import Awareness, Decoder, Doc, merge_updates

from ..crdt import CartDoc, Rejected
from ..crdt.awareness import AwarenessLimits, BadAwareness, Entry, read_update, write_update
from ..crdt.protocol import (
    EMPTY_UPDATE, Kind, ProtocolError, awareness_message, parse, sync_step1, sync_step2,
    update_message,
)
from .access import may_open
from .auth import Identity, TokenError, verify
from .bus import Bus, CartMessage
from .feeds import shop_event
from .sockets import LimitedSocket, close_at_expiry, close_ws
from .catalog import CatalogCache
from .config import Config
from .stock.reconcile import sync_of
from .stock import Decision, StockAuthority, Want
from .store import HoldRow, Store

log = logging.getLogger("livecart.rooms")

# Close codes of DESIGN.md; 44xx are final for the stock y-websocket client.
REJECTED, UNAUTHORIZED, FORBIDDEN, NO_CART, GONE, TOO_LARGE, TOO_FAST = (
    4400, 4401, 4403, 4404, 4409, 4413, 4429)

AWARENESS = AwarenessLimits()
UNREAD: Want = ("", -1)  # a line to reconcile whose want is read from the doc when its turn comes


def hold_entry(decision: Decision, want: Want | None) -> dict[str, Any] | None:
    """A stock decision as `server.holds[lineId]` shows it (None: the line is gone)."""
    return {**decision.to_json(), "sku": want[0]} if want else None


class Close(Exception):
    """Ends one connection with a close code and a reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def binary_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented binary websocket frame (RFC 6455 §5.2), as a server sends it."""
    n = len(payload)
    if n < 126:
        return bytes((0x82, n)) + payload
    if n < 1 << 16:
        return bytes((0x82, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x82, 127)) + n.to_bytes(8, "big") + payload


class Connection:
    """One websocket: frames go straight to its transport, and an inbound rate budget.

    A relay builds each frame once and writes it to every socket of the room
    without a task or a queue per socket (as the y-websocket server's `send`).
    The transport's own buffer is the send queue: a reader that lets it grow past
    `send_buffer_bytes` is cut off at once (its unsent data freed; a close frame
    would only queue behind it), and the client reconnects and resyncs.
    """

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport, who: Identity,
                 config: Config, room_id: str) -> None:
        self.ws, self.transport, self.who, self.room_id = ws, transport, who, room_id
        self.awareness_ids: set[int] = set()  # the awareness client ids it owns now
        self.introduced: set[int] = set()  # every one it has owned (at most AWARENESS.max_clients)
        self._buffer_limit = config.send_buffer_bytes
        self._rate = float(config.max_messages_per_second)
        self._tokens = self._rate
        self._last = asyncio.get_running_loop().time()
        self._closer: asyncio.Future[None] | None = None
        self.closing: Close | None = None
        self._expiry = close_at_expiry(who, self.close_soon)

    def send(self, message: bytes) -> None:
        self.send_frame(binary_frame(message))

    def send_frame(self, frame: bytes) -> None:
        transport = self.transport
        if self.closing or transport.is_closing() or getattr(self.ws, "refusing", False):
            return
        if transport.get_write_buffer_size() > self._buffer_limit:
            log.info("cart %s: %s reads too slowly; connection reset", self.room_id, self.who.sub)
            self.closing = Close(WSCloseCode.TRY_AGAIN_LATER, "client too slow to keep up")
            transport.abort()
            return
        transport.write(frame)

    def close_soon(self, code: int, reason: str) -> None:
        """Closes after what is already written (the close frame queues behind it)."""
        if not self.closing:
            self.closing = Close(code, reason)
            self._closer = asyncio.ensure_future(self._close(self.closing))

    async def _close(self, close: Close) -> None:
        try:
            await close_ws(self.ws, close.code, close.reason)
        except (ConnectionError, RuntimeError):
            pass  # the peer went away; the reader side cleans up

    def allow(self) -> bool:
        now = asyncio.get_running_loop().time()
        self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def finish(self) -> None:
        """Waits (bounded) for a close in progress to be sent."""
        if self._expiry is not None:
            self._expiry.cancel()
        if self._closer is not None and not self._closer.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._closer), timeout=5)
            except asyncio.TimeoutError:
                self._closer.cancel()


class Room:
    """A loaded cart and the connections editing it."""

    def __init__(self, cart_id: str, cart: CartDoc, last_seq: int, rooms: Rooms) -> None:
        self.id, self.cart, self.rooms = cart_id, cart, rooms
        self.conns: set[Connection] = set()
        self.last_seq = last_seq  # every update up to here is applied (contiguous)
        self._ahead: set[int] = set()  # applied updates past a gap
        self._catching_up: asyncio.Future[bool] | None = None
        self._since_compact = 0
        self._last_write: Awaitable[int] | None = None
        self._dirty_lines: dict[str, Want | None] = {}  # lines whose holds must follow; their want if known
        self._presence_timer: asyncio.TimerHandle | None = None
        self._repricing: asyncio.Future[None] | None = None
        self._reconciling: asyncio.Future[None] | None = None
        self._audit = False  # a check of the shown holds against stock is asked for
        self._audit_before: dict[str, HoldRow] | None = None  # the holds it found before the doc was read
        self._unload: asyncio.TimerHandle | None = None
        self.awareness = Awareness(Doc())
        self._aw_owner: dict[int, Connection] = {}  # awareness client id -> the socket it came from
        self.awareness.set_local_state(None)  # the server itself has no presence

    # -- membership ---------------------------------------------------------------

    def join(self, conn: Connection) -> None:
        if self._unload:
            self._unload.cancel()
            self._unload = None
        self.conns.add(conn)
        conn.send(sync_step1(self.cart.state()))
        if self.awareness.states:
            conn.send(awareness_message(self.awareness.encode_awareness_update(list(self.awareness.states))))

    def leave(self, conn: Connection) -> None:
        self.conns.discard(conn)
        gone = [i for i in conn.awareness_ids if self._aw_owner.get(i) is conn]
        for client_id in gone:
            del self._aw_owner[client_id]
        if gone:
            self.awareness.remove_awareness_states(gone, conn)
            self._relay_awareness(gone)
        if not self.conns:
            self.schedule_unload()

    def schedule_unload(self) -> None:
        if self._unload:
            self._unload.cancel()
        self._unload = asyncio.get_running_loop().call_later(
            self.rooms.config.room_grace_seconds, self.rooms.unload_soon, self)

    def broadcast(self, message: bytes, exclude: Connection | None = None) -> None:
        frame = binary_frame(message)
        for conn in self.conns:
            if conn is not exclude:
                conn.send_frame(frame)

    # -- the message switch ---------------------------------------------------------

    async def receive(self, conn: Connection, frame: bytes) -> None:
        try:
            msg = parse(frame)
        except ProtocolError as exc:
            raise Close(REJECTED, f"not a y-protocols message: {exc}") from None
        if msg.kind is Kind.SYNC_STEP1:
            await self.durable()
            try:
                conn.send(sync_step2(self.cart.diff(msg.payload)))
            except Exception:
                raise Close(REJECTED, "malformed state vector in sync step 1") from None
        elif msg.kind in (Kind.SYNC_STEP2, Kind.UPDATE):
            if msg.payload != EMPTY_UPDATE:
                await self.client_update(conn, msg.payload)
        elif msg.kind is Kind.AWARENESS:
            self.client_awareness(conn, msg.payload)
        elif msg.kind is Kind.QUERY_AWARENESS:
            states = list(self.awareness.states)
            conn.send(awareness_message(self.awareness.encode_awareness_update(states)))

    def check_open_for_clients(self) -> None:
        """A merged or closed cart takes no more clients (4409 names where it went)."""
        status = self.cart.status
        if status == "merged":
            raise Close(GONE, f"cart merged into {self.cart.merged_into}")
        if status == "closed":
            raise Close(GONE, "cart closed")

    async def client_update(self, conn: Connection, update: bytes) -> None:
        self.check_open_for_clients()
        if self.cart.status != "open":
            raise Close(REJECTED, f"cart is {self.cart.status.replace('_', ' ')}: it takes no edits")
        verdict = self.cart.apply_client_update(update, self.rooms.catalog.get, self.rooms.config.limits)
        if isinstance(verdict, Rejected) and (
                (verdict.sku and await self.rooms.catalog.knows(verdict.sku))  # a product just added elsewhere
                or (verdict.missing and await self.catch_up())):  # this process is behind the shared log
            verdict = self.cart.apply_client_update(update, self.rooms.catalog.get, self.rooms.config.limits)
        if isinstance(verdict, Rejected):
            raise Close(REJECTED, verdict.reason)
        touched, wants, update = self.cart.last_touched_lines(), self.cart.last_wants(), self.cart.last_accepted
        codes_changed = "discountCodes" in self.cart.last_touched_meta()
        if update == EMPTY_UPDATE:
            return  # all of it was known already
        self.report_edit(conn.who, *self.cart.last_added_removed(), wants)
        answer = self._answer_now(touched, wants) if touched or codes_changed else b""
        if answer:
            both = merge_updates(update, answer)  # stored and relayed as one update: one row, one apply
            await self.persist(both)
            self._relay_answered(conn, both, answer)
            return
        await self.persist(update)
        self.broadcast(update_message(update), exclude=conn)
        if answer is None:  # stock decides in the background: holds and prices follow the edit
            if touched:
                self.want_holds(touched, wants)
            else:
                self._reprice_soon()

    def _answer_now(self, touched: set[str], wants: dict[str, Want | None]) -> bytes | None:
        """The server's answer to an edit, when stock can decide at once: the touched lines'
        holds and the pricing that follows, written into `server` (the update; empty if
        nothing changed). None when holds are left to the background: a reconcile in flight
        keeps its order, and a remote authority (Redis) decides asynchronously."""
        if self._dirty_lines or (self._reconciling is not None and not self._reconciling.done()):
            return None
        decided = self.rooms.stock.reserve_now(self.id, wants) if touched else {}  # wants: one per touched line
        if decided is None:
            return None
        return self.cart.settle({line_id: hold_entry(decision, wants[line_id]) for line_id, decision in decided.items()},
                                self.rooms.catalog.get, self.rooms.shop_codes)

    def _relay_answered(self, sender: Connection, both: bytes, answer: bytes) -> None:
        """The others get the edit with the server's answer to it; the sender, who has the
        edit, gets the answer alone."""
        answer_frame, both_frame = binary_frame(update_message(answer)), binary_frame(update_message(both))
        for conn in self.conns:
            conn.send_frame(answer_frame if conn is sender else both_frame)

    # -- what the shop floor sees ---------------------------------------------------------

    def report_edit(self, who: Identity, added: Iterable[str] = (), removed: Iterable[str] = (),
                    wants: dict[str, Want | None] | None = None) -> None:
        """Tells listeners (kiosk idle clocks, abandoned-cart timers) about an edit, and the admin
        feed about lines added or removed (`wants`: their sku and qty, if already read)."""
        for listener in self.rooms.edit_listeners:
            listener(who, self.id)
        known = wants or {}
        unread = {line_id for line_id in added if not known.get(line_id)}
        if unread:
            known = {**known, **self.cart.wanted(unread)}
        for line_id in sorted(added):
            sku, qty = known.get(line_id) or ("", 0)
            shop_event(self.rooms.bus, "cart.line_added", cartId=self.id, lineId=line_id, sku=sku, qty=qty,
                       who=who.sub, role=who.role, channel=self._channel_of(line_id))
        for line_id in sorted(removed):
            shop_event(self.rooms.bus, "cart.line_removed", cartId=self.id, lineId=line_id,
                       who=who.sub, role=who.role)

    def _channel_of(self, line_id: str) -> str:
        line = self.cart.lines.get(line_id)
        return str(line.get("channel") or "") if line is not None else ""

    def presence(self) -> list[dict[str, Any]]:
        """Who has the cart open, from awareness: name, role, channel, focused or away."""
        present = []
        for client_id, state in self.awareness.states.items():
            if not isinstance(state, dict):  # judged on the way in; a process of an older version may not have
                continue
            user = state.get("user") if isinstance(state.get("user"), dict) else {}
            present.append({"clientId": client_id, "name": _text(user.get("name")), "role": _text(user.get("role")),
                            "channel": _text(user.get("channel")), "focus": state.get("focus", True) is not False})
        return present

    def _presence_changed(self) -> None:
        if self._presence_timer is None:  # at most one report per 200 ms burst
            self._presence_timer = asyncio.get_running_loop().call_later(0.2, self._report_presence)

    def _report_presence(self) -> None:
        self._presence_timer = None
        shop_event(self.rooms.bus, "cart.presence", cartId=self.id, present=self.presence())

    # -- stock: holds follow the lines ------------------------------------------------

    def want_holds(self, line_ids: Iterable[str], known: dict[str, Want | None] | None = None) -> None:
        """Asks the stock actor to match these lines' holds to their quantities (in the background).

        `known`: what validation already read of them (sku, qty; None: removed), so it is not read again.
        """
        for line_id in line_ids:
            self._dirty_lines[line_id] = known.get(line_id, UNREAD) if known else UNREAD
        if self._reconciling is None or self._reconciling.done():
            self._reconciling = asyncio.ensure_future(self._reconcile())

    def audit_holds(self, before: dict[str, HoldRow] | None = None) -> None:
        """Has the background check that `server.holds` says what the stock authority holds (a
        crash can leave the doc behind it) run in turn with the holds edits ask for; holds whose
        line is gone go back. `before`: the cart's holds, read before its document was loaded."""
        self._audit, self._audit_before = True, before
        self.want_holds(())

    async def _reconcile(self) -> None:
        stock = self.rooms.stock
        while self._dirty_lines or self._audit:
            if self.cart.status in ("merged", "closed"):
                self._dirty_lines, self._audit = {}, False
                return  # its holds moved or went back with the merge; reserving now would strand stock
            if self._audit:
                self._audit, before, self._audit_before = False, self._audit_before, None
                await self._audit_holds(before)
                continue
            wanted, self._dirty_lines = self._dirty_lines, {}
            unread = {line_id for line_id, want in wanted.items() if want is UNREAD}
            if unread:
                wanted.update(self.cart.wanted(unread))
            calls = [stock.reserve(self.id, line_id, *want) if want else stock.release(self.id, line_id)
                     for line_id, want in wanted.items()]
            if len(calls) == 1:  # the usual case: one edited line, no task per call
                try:
                    results: list[Any] = [await calls[0]]
                except Exception as exc:
                    results = [exc]
            else:
                results = await asyncio.gather(*calls, return_exceptions=True)
            decisions: dict[str, dict[str, Any] | None] = {}
            for (line_id, want), result in zip(wanted.items(), results):
                if isinstance(result, BaseException):
                    log.error("cart %s line %s: stock failed: %s", self.id, line_id, result)
                    self._dirty_lines.setdefault(line_id, UNREAD)
                    await asyncio.sleep(1)  # storage trouble: retry, not spin
                    continue
                decisions[line_id] = hold_entry(result, want)
            await self.set_holds(decisions)

    async def _audit_holds(self, before: dict[str, HoldRow] | None) -> None:
        stock = self.rooms.stock
        try:
            if before is None:  # the holds first, then the doc: a hold seen here has its line stored
                before = await stock.holds_of(self.id)
                await self.catch_up()
            after = await stock.holds_of(self.id)  # and after the doc: a hold it shows is not missed
        except Exception as exc:  # the authority is away: a reconnect audits again
            log.warning("cart %s: holds not checked against stock: %s", self.id, exc)
            return
        pending = set(self._dirty_lines)  # decided next anyway
        gone = set(before) - set(self.cart.lines.keys()) - pending
        self.want_holds(await self.show_holds(after, pending) | gone)

    async def show_holds(self, held: dict[str, HoldRow], skip: Iterable[str] = ()) -> set[str]:
        """Writes into `server.holds` what the authority holds (`held`: its `holds_of` this cart) for
        the cart's lines but `skip`; returns the lines whose hold the authority must put right."""
        sync = sync_of(self.cart, held, int(time.time() * 1000), skip)
        if sync.show:
            await self.set_holds(dict(sync.show))
        return sync.reserve

    def busy(self) -> bool:
        """Work in flight that an unload would cut short (holds being decided, a write)."""
        return any(isinstance(f, asyncio.Future) and not f.done()
                   for f in (self._reconciling, self._repricing, self._last_write))

    async def set_holds(self, decisions: dict[str, dict[str, Any] | None]) -> None:
        """Writes hold outcomes (none: just reprice) into `server`, persisted and relayed."""
        try:
            await self.commit(self.cart.settle(decisions, self.rooms.catalog.get, self.rooms.shop_codes))
        except Close:
            pass  # the room failed and was dropped; its clients reconnect

    def client_awareness(self, conn: Connection, payload: bytes) -> None:
        try:
            entries = read_update(payload, AWARENESS)
        except BadAwareness as exc:
            raise Close(TOO_LARGE if exc.too_large else REJECTED, str(exc)) from None
        # A removal of a client the room never heard of changes nothing: not kept, not relayed.
        entries = [e for e in entries if not e.removal or e.client_id in self.awareness.meta]
        self._count_introduced(conn, entries)
        changed = self._apply_awareness(write_update(entries), conn) if entries else []
        for client_id in changed:
            # A connection owns the presence it introduced, never the states of others
            # that the stock client echoes back (else its leaving would remove them all).
            owner = self._aw_owner.get(client_id)
            if client_id in self.awareness.states and owner in (None, conn):
                self._aw_owner[client_id] = conn
                conn.awareness_ids.add(client_id)
            elif client_id not in self.awareness.states and owner is conn:
                del self._aw_owner[client_id]
                conn.awareness_ids.discard(client_id)
        if changed:
            self._relay_awareness(changed)

    def _count_introduced(self, conn: Connection, entries: list[Entry]) -> None:
        """A connection may bring in a few awareness clients of its own, over its whole life
        (so it cannot cycle through ids either); closes it with 4400 past that."""
        meta = self.awareness.meta
        new = {e.client_id for e in entries if not e.removal and self._aw_owner.get(e.client_id) is None
               and e.clock > meta.get(e.client_id, {}).get("clock", 0)}
        if len(conn.introduced | new) > AWARENESS.max_clients:
            raise Close(REJECTED, f"too many awareness clients on one connection (max {AWARENESS.max_clients})")
        conn.introduced |= new

    def _apply_awareness(self, payload: bytes, origin: Any) -> list[int]:
        """Applies an awareness update; returns the client ids it really advanced.

        As in y-protocols, a state counts only with a newer clock (or a removal at the
        same clock); echoes of what everyone has already are dropped, not re-broadcast.
        """
        decoder = Decoder(payload)
        ids = []
        for _ in range(decoder.read_var_uint()):
            ids.append(decoder.read_var_uint())
            decoder.read_var_uint()  # clock
            decoder.read_var_string()  # state
        meta, states = self.awareness.meta, self.awareness.states
        before = {i: (meta.get(i, {}).get("clock"), i in states) for i in ids}
        self.awareness.apply_awareness_update(payload, origin)
        return [i for i in ids if (meta.get(i, {}).get("clock"), i in states) != before[i]]

    def _relay_awareness(self, changed: list[int]) -> None:
        update = self.awareness.encode_awareness_update(changed)
        # To every client, the sender too: the stock client drops a socket silent for 30 s,
        # and its own renewals (every 15 s, a newer clock) are what keeps it fed.
        self.broadcast(awareness_message(update))
        self.rooms.bus.publish_cart(self.id, "awareness", 0, update)
        self._presence_changed()

    async def write(self, change: Callable[[CartDoc], None]) -> None:
        """A trusted server-side change: persisted, then relayed to every client."""
        await self.commit(self.cart.write(change))

    async def commit(self, update: bytes) -> None:
        """Persists and relays an update already applied to the cart by a trusted writer."""
        if update:
            await self.persist(update)
            self.broadcast(update_message(update))

    def close_clients(self, code: int, reason: str, which: Callable[[Connection], bool] = lambda c: True) -> None:
        for conn in list(self.conns):
            if which(conn):
                conn.close_soon(code, reason)

    # -- durability -------------------------------------------------------------------

    async def persist(self, update: bytes) -> None:
        pending = self._last_write = self.rooms.store.append(self.id, update)
        try:
            seq = await pending
        except Exception as exc:
            log.warning("cart %s: could not persist an update (%s); clients reconnect", self.id, exc)
            self.rooms.fail(self)
            raise Close(WSCloseCode.INTERNAL_ERROR, "storage failed; reconnect") from None
        self._mark(seq)
        self.rooms.bus.publish_cart(self.id, "update", seq, update)
        self._since_compact += 1
        if self._since_compact >= self.rooms.config.compact_every:
            self._since_compact = 0
            await self.compact()

    def _mark(self, seq: int) -> None:
        if seq == self.last_seq + 1:
            self.last_seq = seq
            while self.last_seq + 1 in self._ahead:
                self.last_seq += 1
                self._ahead.discard(self.last_seq)
        elif seq > self.last_seq:
            self._ahead.add(seq)

    def _seen(self, seq: int) -> bool:
        return seq <= self.last_seq or seq in self._ahead

    # -- other processes ---------------------------------------------------------------

    def on_bus(self, msg: CartMessage) -> None:
        if msg.kind == "update":
            if self._seen(msg.seq):
                return
            if msg.seq == self.last_seq + 1:
                self._mark(msg.seq)
                self._apply_remote(msg.payload)
            else:
                self.catch_up()  # a gap: the log has what the bus lost or reordered
        elif msg.kind == "awareness":
            changed = self._apply_awareness(msg.payload, "remote")
            if changed:
                self.broadcast(awareness_message(self.awareness.encode_awareness_update(changed)))
        elif msg.kind == "awareness?":
            local = [cid for conn in self.conns for cid in conn.awareness_ids]
            if local:
                self.rooms.bus.publish_cart(
                    self.id, "awareness", 0, self.awareness.encode_awareness_update(local))

    def _apply_remote(self, update: bytes) -> None:
        lines, server = self.cart.apply_trusted(update)
        self.broadcast(update_message(update))
        if lines or server:
            self._reprice_soon()

    def catch_up(self) -> asyncio.Future[bool]:
        """Applies whatever the store has past `last_seq` (one catch-up at a time);
        the result says whether anything new arrived."""
        if self._catching_up is None or self._catching_up.done():
            self._catching_up = asyncio.ensure_future(self._catch_up())
        return self._catching_up

    async def _catch_up(self) -> bool:
        applied = False
        try:
            for seq, update in await self.rooms.store.load_since(self.id, self.last_seq):
                if not self._seen(seq):
                    self._mark(seq)
                    self._apply_remote(update)
                    applied = True
        except Exception as exc:  # Redis away: the reconnect hook tries again
            log.warning("cart %s: catch-up failed: %s", self.id, exc)
        return applied

    def _reprice_soon(self) -> None:
        # Two processes may each have priced a cart before seeing the other's holds;
        # whoever's price differs from the merged state writes it again (never both,
        # once they agree, because equal prices are not written).
        if self._repricing is None or self._repricing.done():
            self._repricing = asyncio.ensure_future(self.set_holds({}))

    async def durable(self) -> None:
        """Waits until everything applied so far is on disk (nothing unsaved is ever sent)."""
        if self._last_write is not None:
            try:
                await asyncio.shield(self._last_write)
            except Exception:
                raise Close(WSCloseCode.INTERNAL_ERROR, "storage failed; reconnect") from None

    async def compact(self) -> None:
        await self.durable()
        if self.cart.pending_updates:
            await self.rooms.store.compact(self.id, self.cart.compact(), self.last_seq)


class Rooms:
    """The loaded rooms of this process, keyed by cart id."""

    def __init__(self, config: Config, store: Store, catalog: CatalogCache, stock: StockAuthority,
                 bus: Bus) -> None:
        self.config, self.store, self.catalog, self.stock, self.bus = config, store, catalog, stock, bus
        bus.reconnected.append(self.catch_up_all)
        bus.on_event("revoke", self.on_revoked)
        bus.on_event("gone", self.on_gone)
        self.rooms: dict[str, Room] = {}
        self.edit_listeners: list[Callable[[Identity, str], None]] = []
        self.shop_codes: Callable[[str], dict[str, int] | None] = lambda code: None
        self._loading: dict[str, asyncio.Future[Room]] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def get(self, cart_id: str) -> Room:
        """The cart's room, loaded if need be. A room nobody is connected to (loaded for an HTTP
        request, an expiry, a merge) unloads `--room-grace` seconds after its last use; a socket
        joining keeps it."""
        room = self.rooms.get(cart_id)
        if room is None:
            loading = self._loading.get(cart_id)
            if loading is None:
                loading = self._loading[cart_id] = asyncio.ensure_future(self._load(cart_id))
                loading.add_done_callback(lambda _: self._loading.pop(cart_id, None))
            room = await asyncio.shield(loading)
        if not room.conns:
            room.schedule_unload()
        return room

    async def _load(self, cart_id: str) -> Room:
        before = await self.stock.holds_of(cart_id)  # read before the doc: each of them has its line stored
        stored = await self.store.load(cart_id)
        room = Room(cart_id, CartDoc(stored.snapshot, stored.updates), stored.last_seq, self)
        await self.bus.join_cart(cart_id, room.on_bus)
        self.rooms[cart_id] = room
        await room.catch_up()  # what was stored between our load and our subscription
        self.bus.publish_cart(cart_id, "awareness?", 0, b"")
        room.audit_holds(before)  # a crash may have parted the doc from the authority
        unheld = room.cart.lines_without_hold()
        if unheld:  # a reconcile cut short by a crash or restart: finish it
            room.want_holds(unheld)
        return room

    async def on_expired(self, cart_id: str, decisions: dict[str, Decision]) -> None:
        """The actor let holds run out: show it in the cart, loading it if nobody has it open."""
        room = await self.get(cart_id)
        # A line held again since (an edit decided at once while this was on its way) keeps
        # its new hold: only lines with no hold now show `expired`.
        held_now = await self.stock.holds_of(cart_id)
        await room.set_holds({line: d.to_json() for line, d in decisions.items() if line not in held_now})

    def unload_soon(self, room: Room) -> None:
        if room.conns or self.rooms.get(room.id) is not room:
            return
        if room.busy():  # holds still being decided or written: look again after another grace
            room.schedule_unload()
            return
        del self.rooms[room.id]
        self._spawn(room.compact())
        self._spawn(self.bus.leave_cart(room.id))

    def close_where(self, which: Callable[[Connection], bool], code: int, reason: str) -> None:
        """Closes matching sockets in this process (access revoked, cart merged)."""
        for room in self.rooms.values():
            room.close_clients(code, reason, which)

    def on_revoked(self, event: dict[str, Any]) -> None:
        """Bus topic "revoke": a kiosk signed out (or any identity lost a cart) in some process."""
        role, sub, cart = event.get("role"), event.get("sub"), event.get("cartId")
        self.close_where(lambda c: c.who.role == role and c.who.sub == sub and (cart is None or c.room_id == cart),
                         FORBIDDEN, str(event.get("reason", "access revoked")))

    def on_gone(self, event: dict[str, Any]) -> None:
        """Bus topic "gone": a cart was merged or closed; its sockets everywhere close with 4409."""
        room = self.rooms.get(str(event.get("cartId")))
        if room is not None:
            room.close_clients(GONE, str(event.get("reason")))

    async def catch_up_all(self) -> None:
        """After a bus outage: every loaded room catches up, and checks its holds against stock
        (another process may have died between a line's removal and its release)."""
        await asyncio.gather(*(room.catch_up() for room in list(self.rooms.values())))
        for room in list(self.rooms.values()):
            room.audit_holds()

    def fail(self, room: Room) -> None:
        """Drops a room whose writes failed; the next connection reloads it from the store."""
        if self.rooms.get(room.id) is room:
            del self.rooms[room.id]
            self._spawn(self.bus.leave_cart(room.id))
        for conn in room.conns:
            conn.close_soon(WSCloseCode.INTERNAL_ERROR, "storage failed; reconnect")

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def close_connections(self) -> None:
        """Server shutdown, first step: every socket is told to go (clients reconnect elsewhere)."""
        for room in self.rooms.values():
            for conn in list(room.conns):
                conn.close_soon(WSCloseCode.GOING_AWAY, "server shutting down")

    async def close(self) -> None:
        """Server shutdown, last step: every room is compacted into the store."""
        for room in list(self.rooms.values()):
            self._spawn(room.compact())
        self.rooms.clear()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


async def cart_socket(request: web.Request, config: Config, rooms: Rooms) -> web.WebSocketResponse:
    """GET /ws/carts/{cartId}: a stock y-websocket provider talks to this."""
    ws = LimitedSocket(request, config.max_message_bytes, heartbeat=30.0, compress=False)
    await ws.prepare(request)
    try:
        who = verify(config.jwt_secret, request.query.get("token"))
        record = await rooms.store.get_cart(request.match_info["cartId"])
        if record is None:
            raise Close(NO_CART, "no such cart")
        if not await may_open(rooms.store, who, record):
            raise Close(FORBIDDEN, "not allowed to open this cart")
        room = await rooms.get(record.id)
        room.check_open_for_clients()
    except TokenError as exc:
        await close_ws(ws, UNAUTHORIZED, str(exc))
        return ws
    except Close as close:
        await close_ws(ws, close.code, close.reason)
        return ws
    except Exception as exc:  # the store or bus is away: a clear, retryable close, not a hang
        log.warning("cart %s: cannot open (%s)", request.match_info["cartId"], exc)
        await close_ws(ws, WSCloseCode.INTERNAL_ERROR, "storage unavailable; retry shortly")
        return ws
    if request.transport is None:
        return ws  # the client is gone already
    conn = Connection(ws, request.transport, who, config, room.id)
    try:
        room.join(conn)
        await serve_connection(room, conn, config)
    finally:
        try:
            room.leave(conn)
        except Exception:  # never an HTTP 500 written into the upgraded socket
            log.exception("cart %s: error when %s left", room.id, who.sub)
        await conn.finish()
    return ws


async def serve_connection(room: Room, conn: Connection, config: Config) -> None:
    """Reads the socket until it closes; every way it can fail ends in a close code."""
    try:
        async for msg in conn.ws:
            if conn.closing:
                return
            if msg.type is WSMsgType.ERROR:
                return  # the socket closed itself (LimitedSocket: 4413 or 4400)
            if msg.type is not WSMsgType.BINARY:
                raise Close(REJECTED, "binary y-protocols frames only")
            if len(msg.data) > config.max_message_bytes:
                raise Close(TOO_LARGE, f"message over {config.max_message_bytes} bytes")
            if not conn.allow():
                raise Close(TOO_FAST, f"over {config.max_messages_per_second} messages per second")
            await room.receive(conn, msg.data)
    except Close as close:
        conn.close_soon(close.code, close.reason)
    except Exception:
        log.exception("cart %s: error serving %s", room.id, conn.who.sub)
        conn.close_soon(WSCloseCode.INTERNAL_ERROR, "server error; reconnect")


def _text(value: Any) -> str | None:
    """A presence field as the shop-floor feed shows it: a string, or nothing."""
    return value if isinstance(value, str) else None
