"""Carts: who owns them, creating and finding them, reading one, and line edits for clients without Yjs."""
from __future__ import annotations

from typing import Any, Callable

from ..crdt import CartDoc, server_root
from ..crdt.cart import Origin, new_line
from ..crdt.validate import check_line
from .access import grant_cart, record_lookup
from .auth import Identity
from .bus import Bus
from .catalog import CatalogCache
from .clock import now_ms
from .config import Config
from .discounts import DiscountBook
from .feeds import shop_event
from .hooks import Edit
from .ids import new_id
from .refusals import Conflict, Forbidden, Invalid, NotFound
from .stock import StockAuthority
from .stock.reconcile import sync_of
from .store import CartRecord, Store
from .sync.registry import Rooms
from .sync.room import Room

CHANNELS = ("web", "app", "kiosk", "store", "call-centre", "api")
ROLE_CHANNEL = {"customer": "web", "assistant": "store", "operator": "call-centre", "kiosk": "kiosk", "admin": "api"}
Personalisation = dict[str, str | list[str]]


class Carts:
    """Cart records and their documents as HTTP callers see them; edits go through the cart's room."""

    def __init__(self, config: Config, store: Store, rooms: Rooms, stock: StockAuthority, catalog: CatalogCache,
                 discounts: DiscountBook, bus: Bus) -> None:
        self.config, self.store, self.rooms, self.stock = config, store, rooms, stock
        self.catalog, self.discounts, self.bus = catalog, discounts, bus

    # -- records ----------------------------------------------------------------------------------

    async def create(self, owner: str, channel: str) -> CartRecord:
        record = CartRecord(new_id("c-"), owner, channel, now_ms())
        await self.store.append(record.id, server_root.init(CartDoc()))
        await self.store.create_cart(record)
        shop_event(self.bus, "cart.created", cartId=record.id, owner=owner, channel=channel)
        return record

    async def create_for(self, who: Identity, channel: str, owner: str | None) -> CartRecord:
        """A cart as the caller's role makes it: a customer's own, an assistant's walk-in cart (theirs to
        help with), an operator's or admin's for the customer they name."""
        if who.role == "customer":
            owner = who.sub
        elif who.role == "assistant":
            owner = new_id("walkin-")  # a walk-in shopper, until they claim it by invite code
        elif not owner:
            raise Invalid("bad_owner", f"an {who.role} creates a cart for a customer: give 'owner'")
        elif who.role == "operator" and await self.store.get_record("lookup", f"{who.sub}|{owner}") is None:
            raise Forbidden("forbidden", "look the customer up first (GET /api/customers/{id})")
        record = await self.create(owner, channel)
        if who.role == "assistant":
            await grant_cart(self.store, who, record.id)
        return record

    async def active(self, owner: str, channel: str) -> str:
        """The owner's newest open cart, created when there is none."""
        closed = await self.store.list_records("cart-closed")
        for record in reversed(await self.store.list_carts(owner)):
            if record.id not in closed:
                return record.id
        return (await self.create(owner, channel)).id

    async def list_of(self, who: Identity, owner: str) -> list[dict[str, Any]]:
        """The owner's carts with their status (an operator's listing counts as a lookup)."""
        await record_lookup(self.store, who, owner)
        closed = await self.store.list_records("cart-closed")
        return [{**r.to_json(), "status": closed.get(r.id, {}).get("status", "open")}
                for r in await self.store.list_carts(owner)]

    async def view(self, record: CartRecord) -> dict[str, Any]:
        """The cart as JSON: its record and its document."""
        cart, live = await self.rooms.peek(record.id)
        if not live:
            # Shown as the authority holds them (a crash may have left the stored doc behind it);
            # not stored: the room writes the same when it next loads.
            sync = sync_of(cart, await self.stock.holds_of(record.id), now_ms())
            if sync.show:
                server_root.settle(cart, dict(sync.show), self.catalog.get, self.discounts.get,
                                   self.rooms.deps.groups())
        return {"id": record.id, "owner": record.owner, "channel": record.channel,
                "createdAt": record.created_at, **cart.to_dict()}

    # -- line edits over HTTP (for clients without Yjs) --------------------------------------------

    async def editable(self, record: CartRecord) -> Room:
        """The cart's room, while the cart takes edits."""
        room = await self.rooms.get(record.id)
        if room.cart.status != "open":
            raise Conflict("not_open", f"cart is {room.cart.status}"
                           + (f" into {room.cart.merged_into}" if room.cart.merged_into else ""))
        return room

    async def add_line(self, who: Identity, room: Room, sku: str, qty: int,
                       personalisation: Personalisation | None) -> str:
        """Adds a line; returns its id."""
        if len(room.cart.lines) >= self.config.limits.max_lines:
            raise Conflict("too_many_lines", "the cart is full")
        line_id = new_id("l-")

        def change(cart: CartDoc) -> None:
            cart.lines[line_id] = new_line(sku, qty, who.sub, ROLE_CHANNEL.get(who.role, "api"), now_ms(),
                                           personalisation)
        await self._edit(who, room, change, self._line_check(line_id), line_id)
        return line_id

    async def set_qty(self, who: Identity, room: Room, line_id: str, qty: int) -> None:
        self._line(room, line_id)

        def change(cart: CartDoc) -> None:
            cart.lines[line_id]["qty"] = qty
        await self._edit(who, room, change, self._line_check(line_id), line_id)

    async def remove_line(self, who: Identity, room: Room, line_id: str) -> None:
        self._line(room, line_id)
        await self._edit(who, room, lambda cart: cart.lines.pop(line_id), lambda cart: None, line_id)

    @staticmethod
    def _line(room: Room, line_id: str) -> None:
        if line_id not in room.cart.lines:
            raise NotFound("no_line", "no such line")

    def _line_check(self, line_id: str) -> Callable[[CartDoc], Any]:
        catalog, limits = self.catalog.get, self.config.limits
        return lambda cart: check_line(line_id, cart.lines[line_id], catalog, limits)

    @staticmethod
    async def _edit(who: Identity, room: Room, change: Callable[[CartDoc], Any], check: Callable[[CartDoc], Any],
                    line_id: str) -> None:
        """An edit held to the same schema rules as a Yjs client's (a broken rule is refused)."""
        existed = line_id in room.cart.lines
        try:
            update = room.cart.write_checked(change, check, origin=Origin.HTTP)
        except (ValueError, TypeError) as exc:
            raise Invalid("bad_line", str(exc)) from None
        await room.commit(update)
        exists = line_id in room.cart.lines
        room.edited(Edit(who, added={line_id} if exists and not existed else frozenset(),
                         removed={line_id} if existed and not exists else frozenset()), {line_id})
