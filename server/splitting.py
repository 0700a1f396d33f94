"""Splitting a cart: chosen lines move, with their holds, to a new cart of the same owner (so lines
that may not be bought together can be checked out separately); nothing returns to stock in between."""
from __future__ import annotations

from typing import Any

from ..crdt.split import SplitError, check_split, put_lines, take_lines
from .auth import Identity
from .bus import Bus
from .carts import Carts
from .feeds import shop_event
from .hooks import Edit
from .refusals import Conflict, Invalid, exclusive
from .stock import StockAuthority, StockError
from .store import CartRecord, Store
from .sync.registry import Rooms


class Splitting:
    """The split procedure (one at a time per cart, with checkout and merges, in any process)."""

    def __init__(self, store: Store, stock: StockAuthority, rooms: Rooms, bus: Bus, carts: Carts) -> None:
        self.store, self.stock, self.rooms, self.bus, self.carts = store, stock, rooms, bus, carts

    async def split(self, who: Identity, record: CartRecord, line_ids: Any) -> str:
        """Moves `line_ids` of the cart into a new cart of its owner; returns the new cart's id."""
        async with exclusive(self.store, f"cart:{record.id}"):  # the lock checkout and merges take
            source = await self.rooms.get(record.id)
            if source.cart.status != "open":
                raise Conflict("not_open", f"cart is {source.cart.status}")
            try:
                chosen = check_split(source.cart, line_ids)
            except SplitError as exc:
                raise Invalid(exc.code, exc.message) from None
            new = await self.carts.create(record.owner, record.channel)
            for key in await self.store.list_records("grant"):  # staff who help with the cart help with both
                sub, _, cart_id = key.partition("|")
                if cart_id == record.id:
                    await self.store.put_record("grant", f"{sub}|{new.id}", {"role": "assistant"})
            target = await self.rooms.get(new.id)
            # The lines leave the source and reach the target before any await: no edit slips in between.
            taken, removal = take_lines(source.cart, chosen)
            added = put_lines(target.cart, taken)
            await target.commit(added)
            await source.commit(removal)
            moved: dict[str, dict[str, Any]] = {}
            for line_id, data in taken.items():
                qty = int(data.get("qty") or 0)
                try:  # the same line id in the new cart: one stock step, nothing back to stock
                    decision = await self.stock.transfer((record.id, line_id), (new.id, line_id), qty)
                    moved[line_id] = {**decision.to_json(), "sku": data.get("sku")}
                except StockError:
                    pass  # nothing was held for it: the new cart reserves it afresh below
            await source.commit_holds({line_id: None for line_id in taken})
            await target.commit_holds(moved)
            target.holds.want(set(taken) - set(moved))
            source.edited(Edit(who, removed=frozenset(taken)), set(taken) - set(moved))  # unmoved holds go back
            target.edited(Edit(who, added=frozenset(taken)), ())
        shop_event(self.bus, "cart.split", cartId=record.id, into=new.id, lineIds=sorted(taken), who=who.sub)
        return new.id
