"""Discounts: the shop-wide codes shoppers may type (every process keeps a copy), and offers made into one cart."""
from __future__ import annotations

from typing import Any

from ..crdt import server_root
from ..crdt.cart import plain
from ..crdt.schema import MAX_AMOUNT
from .bus import Bus
from .feeds import customer_event
from .refusals import Conflict, Invalid, int_in
from .sync.registry import Rooms
from .store import CartRecord, Store

Rule = dict[str, int]  # {"percentOff": 1..100} or {"amountOff": minor units}


def rule_from_json(body: dict[str, Any]) -> Rule:
    percent, amount = body.get("percentOff"), body.get("amountOff")
    if (percent is None) == (amount is None):
        raise Invalid("bad_discount", "give exactly one of percentOff (1..100) or amountOff (minor units)")
    if percent is not None:
        return {"percentOff": int_in(body, "percentOff", 1, 100, "bad_discount")}
    return {"amountOff": int_in(body, "amountOff", 1, MAX_AMOUNT, "bad_discount")}  # minor units


def code_from_json(body: dict[str, Any]) -> str:
    code = body.get("code")
    if not isinstance(code, str) or not 1 <= len(code.strip()) <= 64:
        raise Invalid("bad_code", "code must be a string of 1..64 characters")
    return code.strip().upper()


class DiscountBook:
    """Shop-wide codes a shopper may type (kept in the store; every process keeps a copy)."""

    def __init__(self, store: Store, bus: Bus) -> None:
        self.store, self.bus = store, bus
        self.codes: dict[str, Rule] = {}

    async def load(self, _event: Any = None) -> None:
        self.codes = {code: rule for code, rule in (await self.store.list_records("discount")).items()}

    def get(self, code: str) -> Rule | None:
        return self.codes.get(code.strip().upper())

    async def define(self, code: str, rule: Rule) -> str:
        """Defines (or redefines) a code; returns it as shoppers' codes are matched (upper case)."""
        code = code.strip().upper()
        await self.store.put_record("discount", code, rule)
        self.bus.publish_event("discounts", {"code": code})  # every process reloads
        return code


class Offers:
    """A discount offered into one cart, live: its clients see the price drop."""

    def __init__(self, rooms: Rooms, bus: Bus) -> None:
        self.rooms, self.bus = rooms, bus

    async def offer(self, record: CartRecord, code: str, rule: Rule) -> dict[str, Any]:
        """Returns the cart's pricing with the offer."""
        room = await self.rooms.get(record.id)
        if room.cart.status not in ("open",):
            raise Conflict("not_open", f"cart is {room.cart.status}")
        await room.commit(server_root.offer(room.cart, code, rule))
        await room.commit_pricing()  # with the offer
        customer_event(self.bus, record.owner, "discount.offered", cartId=record.id, code=code, **rule)
        return plain(room.cart.server.get("pricing"))
