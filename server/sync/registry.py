"""The loaded rooms of this process, keyed by cart id: loading, unloading, and what reaches every room
(stock expiries, revoked access, carts gone, bus reconnects, shutdown)."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from aiohttp import WSCloseCode

from ...crdt import CartDoc
from ...crdt.groups import NO_GROUPS, CheckoutGroups
from ...crdt.pricing import DiscountLookup
from ..bus import Bus
from ..catalog import CatalogCache
from ..config import Config
from ..hooks import Hooks
from ..metrics import NO_METRICS
from ..stock import Decision, StockAuthority
from ..store import Store
from .connection import FORBIDDEN, GONE, Connection
from .room import Collaborators, Room


class Rooms:
    """The loaded rooms of this process, keyed by cart id."""

    def __init__(self, config: Config, store: Store, catalog: CatalogCache, stock: StockAuthority, bus: Bus,
                 hooks: Hooks | None = None, shop_codes: DiscountLookup = lambda code: None,
                 metrics: Any = NO_METRICS, groups: Callable[[], CheckoutGroups] = lambda: NO_GROUPS) -> None:
        self.config, self.store, self.catalog, self.stock, self.bus = config, store, catalog, stock, bus
        self.hooks = hooks or Hooks()
        self.deps = Collaborators(config, store, bus, stock, catalog, self.hooks, shop_codes, metrics, groups)
        bus.reconnected.append(self.catch_up_all)
        bus.on_event("revoke", self.on_revoked)
        bus.on_event("gone", self.on_gone)
        self.rooms: dict[str, Room] = {}
        self._loading: dict[str, asyncio.Future[Room]] = {}
        self._background: set[asyncio.Task[None]] = set()
        # frames inside rooms at once, all sockets together (socket.serve_connection)
        self.in_flight = asyncio.Semaphore(config.max_edits_in_flight)

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

    async def peek(self, cart_id: str) -> tuple[CartDoc, bool]:
        """The cart's document without loading a room, for reading: the live room's (True), or one
        read from the store (False) that nobody else holds. Edits go through `get`."""
        room = self.rooms.get(cart_id)
        if room is not None:
            return room.cart, True
        stored = await self.store.load(cart_id)
        return CartDoc(stored.snapshot, stored.updates), False

    async def _load(self, cart_id: str) -> Room:
        before = await self.stock.holds_of(cart_id)  # read before the doc: each of them has its line stored
        stored = await self.store.load(cart_id)
        room = Room(cart_id, CartDoc(stored.snapshot, stored.updates), stored.last_seq, self.deps, self)
        await self.bus.join_cart(cart_id, room.on_bus)
        self.rooms[cart_id] = room
        await room.catchup.run()  # what was stored between our load and our subscription
        self.bus.publish_cart(cart_id, "awareness?", 0, b"")
        room.holds.audit(before)  # a crash may have parted the doc from the authority
        unheld = room.cart.lines_without_hold()
        if unheld:  # a reconcile cut short by a crash or restart: finish it
            room.holds.want(unheld)
        self.hooks.on_load(room)
        return room

    async def on_expired(self, cart_id: str, decisions: dict[str, Decision]) -> None:
        """The actor let holds run out: show it in the cart, loading it if nobody has it open."""
        room = await self.get(cart_id)
        # A line held again since (an edit decided at once while this was on its way) keeps
        # its new hold: only lines with no hold now show `expired`.
        held_now = await self.stock.holds_of(cart_id)
        await room.commit_holds({line: d.to_json() for line, d in decisions.items() if line not in held_now})

    def unload_soon(self, room: Room) -> None:
        if room.conns or self.rooms.get(room.id) is not room:
            return
        if room.busy():  # holds still being decided or written: look again after another grace
            room.schedule_unload()
            return
        del self.rooms[room.id]
        self._spawn(room.compact())
        self._spawn(self.bus.leave_cart(room.id))
        self.hooks.on_unload(room)

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
        await asyncio.gather(*(room.catchup.run() for room in list(self.rooms.values())))
        for room in list(self.rooms.values()):
            room.holds.audit()

    def reprice_all(self, _event: Any = None) -> None:
        """Every loaded room writes its pricing and conflicts again (the checkout-group rules changed)."""
        for room in list(self.rooms.values()):
            if room.cart.status == "open":
                self._spawn(room.commit_pricing())

    def fail(self, room: Room) -> None:
        """Drops a room whose writes failed; the next connection reloads it from the store."""
        if self.rooms.get(room.id) is room:
            del self.rooms[room.id]
            self._spawn(self.bus.leave_cart(room.id))
            self.hooks.on_unload(room)
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
                conn.close_soon(WSCloseCode.SERVICE_RESTART, "server restarting; reconnect")

    async def close(self) -> None:
        """Server shutdown, last step: every room is compacted into the store."""
        for room in list(self.rooms.values()):
            self._spawn(room.compact())
        self.rooms.clear()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
