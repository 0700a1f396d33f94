"""Merging one cart into another (a claim, an invite to a walk-in cart, an explicit merge): holds move with their lines."""
from __future__ import annotations

from typing import Any

from ..crdt import Limits
from ..crdt.merge import MergeError, MergePlan, apply_merge, check_mergeable, merged_source_status, plan_merge
from . import logs
from .access import may_open
from .auth import Identity
from .bus import Bus
from .carts import Carts
from .refusals import Conflict, Forbidden, Invalid, NotFound, exclusive
from .sync.registry import Rooms
from .sync.room import Room
from .stock import StockAuthority, StockError
from .store import CartRecord, Store


class Merging:
    """The merge procedure, and the ways a caller asks for one."""

    def __init__(self, store: Store, stock: StockAuthority, rooms: Rooms, bus: Bus, carts: Carts,
                 limits: Limits) -> None:
        self.store, self.stock, self.rooms, self.bus, self.carts, self.limits = store, stock, rooms, bus, carts, limits

    async def merge_into(self, who: Identity, source: CartRecord, into: str) -> str:
        """The caller merges a cart it may open into another it may open; returns the target's id."""
        target = await self.store.get_cart(into)
        if target is None:
            raise NotFound("no_cart", "no such target cart")
        if not await may_open(self.store, who, target):
            raise Forbidden("forbidden", "not allowed to open the target cart")
        await self.merge(source.id, target.id)
        return target.id

    async def claim(self, customer: str, anonymous: str) -> str:
        """A customer who signed in takes over the open carts of the anonymous shopper they were;
        returns the cart they went into (the customer's newest open one)."""
        target = await self.carts.active(customer, "web")
        closed = await self.store.list_records("cart-closed")
        for record in await self.store.list_carts(anonymous):
            if record.id not in closed and record.id != target:
                await self.merge(record.id, target)
        return target

    async def merge(self, source_id: str, target_id: str) -> None:
        """Merges one cart into another; holds move with their lines and never pass through stock.

        1. The source is marked merged first (its clients close with 4409 naming the target),
           so nothing edits it while it is read. 2. Each hold moves to its target line in one
           stock step (the surplus of a combined line goes back). 3. The target gets the lines.
        """
        source, target = await self.rooms.get(source_id), await self.rooms.get(target_id)
        self._mergeable(source, target)
        async with exclusive(self.store, f"cart:{source_id}"):  # the same lock checkout takes
            await self._merge(source, target)

    async def _merge(self, source: Room, target: Room) -> None:
        stock, store = self.stock, self.store
        source_id, target_id = source.id, target.id
        plan = self._mergeable(source, target)  # again: the status may have changed while we waited
        try:  # the target's lines first (no awaits between plan and apply), then the holds move onto them
            merged_lines = apply_merge(target.cart, plan)
        except MergeError as exc:
            raise Conflict(exc.code, str(exc)) from None
        for key in await store.list_records("grant"):  # staff who helped with the source follow it
            sub, _, cart = key.partition("|")
            if cart == source_id:
                await store.put_record("grant", f"{sub}|{target_id}", {"role": "assistant"})
        await source.commit(merged_source_status(source.cart, target_id))
        await store.put_record("cart-closed", source_id, {"status": "merged", "mergedInto": target_id})
        logs.event("cart.merged", cartId=source_id, into=target_id)
        self.bus.publish_event("gone", {"cartId": source_id, "reason": f"cart merged into {target_id}"})
        moved: dict[str, dict[str, Any]] = {}
        for move in plan.moves:
            try:
                decision = await stock.transfer((source_id, move.src_line), (target_id, move.dst_line), move.keep)
                moved[move.dst_line] = {**decision.to_json(), "sku": move.sku}
            except StockError:
                pass  # nothing was held for that line: the target reserves it afresh below
        await stock.release_cart(source_id)  # anything left (lines the plan dropped) goes back once
        await target.commit(merged_lines)
        await target.commit_holds(moved)
        # Lines whose hold did not come along, and combined lines a client raised meanwhile, reserve now.
        target.holds.want(set(moved) | target.cart.lines_without_hold())
        await source.commit_holds({line: {"status": "released", "qty": 0, "expiresAt": None}
                                for line in source.cart.lines.keys()})

    def _mergeable(self, source: Room, target: Room) -> MergePlan:
        try:
            check_mergeable(source.cart, target.cart, source.id, target.id)
            return plan_merge(source.cart, target.cart, limits=self.limits, source_id=source.id, target_id=target.id)
        except MergeError as exc:
            raise (Invalid if exc.code == "same_cart" else Conflict)(exc.code, str(exc)) from None
