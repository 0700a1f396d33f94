"""What the shop floor hears of carts edited live (an `Extension` of the rooms): lines added and
removed, and who has a cart open, as the shop feed's cart.line_added, cart.line_removed and
cart.presence events."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .bus import Bus
from .feeds import shop_event
from .hooks import Edit, Extension

if TYPE_CHECKING:
    from ..crdt import CartDoc
    from .sync.room import Room

PRESENCE_BURST_SECONDS = 0.2  # at most one presence report per cart per burst of changes


class ShopFloor(Extension):
    """Publishes a room's line and presence changes on the shop feed."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._presence: dict[Room, asyncio.TimerHandle] = {}  # reports due, one per room

    def on_edit(self, room: Room, edit: Edit) -> None:
        """The admin feed hears of lines added (sku and qty: as validation read them, else read
        now) and removed."""
        known = edit.wants
        unread = {line_id for line_id in edit.added if not known.get(line_id)}
        if unread:
            known = {**known, **room.cart.wanted(unread)}
        who = edit.who
        for line_id in sorted(edit.added):
            sku, qty = known.get(line_id) or ("", 0)
            shop_event(self.bus, "cart.line_added", cartId=room.id, lineId=line_id, sku=sku, qty=qty,
                       who=who.sub, role=who.role, channel=_channel_of(room.cart, line_id))
        for line_id in sorted(edit.removed):
            shop_event(self.bus, "cart.line_removed", cartId=room.id, lineId=line_id, who=who.sub, role=who.role)

    def on_presence(self, room: Room) -> None:
        if room not in self._presence:
            self._presence[room] = asyncio.get_running_loop().call_later(
                PRESENCE_BURST_SECONDS, self._report_presence, room)

    def _report_presence(self, room: Room) -> None:
        del self._presence[room]
        shop_event(self.bus, "cart.presence", cartId=room.id, present=room.presence.who())


def _channel_of(cart: CartDoc, line_id: str) -> str:
    line = cart.lines.get(line_id)
    return str(line.get("channel") or "") if line is not None else ""
