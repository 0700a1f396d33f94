"""Chat on the cart beyond the document: messages sent over HTTP (held to a Yjs client's rules), and
the shop floor's `chat.message` for every message a cart takes, however it came (an `Extension`)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..crdt import chat as chat_rules
from ..crdt.cart import Origin
from .auth import Identity
from .bus import Bus
from .clock import now_ms
from .config import Config
from .feeds import shop_event
from .hooks import Edit, Extension
from .ids import new_id
from .refusals import Conflict, Invalid, TooMany
from .store import CartRecord
from .sync.registry import Rooms

if TYPE_CHECKING:
    from .sync.room import Room


class Chat(Extension):
    """Posts messages for HTTP clients; tells the shop floor of every message."""

    def __init__(self, config: Config, rooms: Rooms, bus: Bus) -> None:
        self.config, self.rooms, self.bus = config, rooms, bus

    async def post(self, who: Identity, record: CartRecord, text: Any) -> dict[str, Any]:
        """Appends a message from the caller; returns it. A merged cart names where it went (409); a
        sender past `--max-messages-per-second` is refused (429), as a socket would be (4429)."""
        reason = chat_rules.check_text(text, self.config.limits)
        if reason:
            raise Invalid("bad_message", reason)
        rate = self.config.max_messages_per_second
        if await self.rooms.store.hit(f"chat:{who.role}:{who.sub}", 1) > rate:
            raise TooMany("too_many_messages", f"at most {rate} messages a second")
        room = await self.rooms.get(record.id)
        status = room.cart.status
        if status == "merged":
            into = room.cart.merged_into
            raise Conflict("merged", f"cart {record.id} was merged into {into}: write to {into}")
        if status != "open":
            raise Conflict("not_open", f"cart is {status.replace('_', ' ')}: it takes no messages")
        message = {"id": new_id("m-"), "from": who.sub, "role": who.role, "text": text, "at": now_ms()}
        update = room.cart.write(lambda cart: chat_rules.append(cart.chat, [message]), origin=Origin.HTTP)
        await room.commit(update)
        room.hooks.on_edit(room, Edit(who, chat=(message,)))
        return message

    def on_edit(self, room: Room, edit: Edit) -> None:
        """Every message reaches the shop floor with its cart, whether or not staff have it open."""
        if not edit.chat:
            return
        unread = chat_rules.unread(room.cart.messages())
        for message in edit.chat:
            shop_event(self.bus, "chat.message", cartId=room.id, id=message["id"], text=message["text"],
                       role=message["role"], sentAt=message["at"], unread=unread, **{"from": message["from"]})
