"""The seam for optional capabilities: an `Extension` hears a room's lifecycle (load, unload), each
accepted edit and presence changes; `Hooks` calls every extension in turn. The sync core knows no
capability by name (shop feed, kiosk clocks, webhooks, and later chat, rules and metrics plug in here).
"""
from __future__ import annotations

import logging
from types import MappingProxyType
from typing import TYPE_CHECKING, AbstractSet, Any, Mapping, NamedTuple

from .auth import Identity

if TYPE_CHECKING:  # the room imports this module; extensions only read the room
    from .sync.room import Room

log = logging.getLogger("livecart.hooks")

Want = tuple[str, int]  # what a line asks of stock: (sku, qty)


class Edit(NamedTuple):
    """An accepted edit of a cart's lines or meta (a Yjs client's or an HTTP one), as decided.
    (A named tuple: one is made per edit, and a tuple is the cheapest immutable value.)"""

    who: Identity
    added: AbstractSet[str] = frozenset()  # line ids it created
    removed: AbstractSet[str] = frozenset()  # line ids it removed
    wants: Mapping[str, Want | None] = MappingProxyType({})  # what its lines ask of stock, where read
    chat: tuple[Mapping[str, Any], ...] = ()  # the chat messages it appended {id, from, role, text, at}


class Extension:
    """Lifecycle hooks of a room; override the ones a capability needs (they must not block:
    start a task for I/O). A hook that raises is logged and does not disturb the edit."""

    def on_load(self, room: Room) -> None:
        """The room was loaded into this process."""

    def on_unload(self, room: Room) -> None:
        """The room left this process (unloaded after its grace, or dropped after a storage failure)."""

    def on_edit(self, room: Room, edit: Edit) -> None:
        """An edit was accepted and applied to `room.cart`; it is being stored and relayed."""

    def on_presence(self, room: Room) -> None:
        """Who has the cart open changed (`room.presence.who()`)."""


class Hooks:
    """The extensions of this process, called in the order they were added."""

    def __init__(self, extensions: list[Extension] | None = None) -> None:
        self.extensions: list[Extension] = list(extensions or [])

    def add(self, extension: Extension) -> None:
        self.extensions.append(extension)

    def on_load(self, room: Room) -> None:
        self._call("on_load", room)

    def on_unload(self, room: Room) -> None:
        self._call("on_unload", room)

    def on_edit(self, room: Room, edit: Edit) -> None:
        for extension in self.extensions:  # spelt out: this runs on every edit
            try:
                extension.on_edit(room, edit)
            except Exception:
                log.exception("cart %s: %s.on_edit failed", room.id, type(extension).__name__)

    def on_presence(self, room: Room) -> None:
        self._call("on_presence", room)

    def _call(self, hook: str, room: Room, *args: Any) -> None:
        for extension in self.extensions:
            try:
                getattr(extension, hook)(room, *args)
            except Exception:
                log.exception("cart %s: %s.%s failed", room.id, type(extension).__name__, hook)
