"""How far one room has applied its cart's shared log, and catching up with what other processes wrote to it."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from ..store import Store

log = logging.getLogger("livecart.rooms")


class CatchUp:
    """The room's place in the cart's log: every update up to `last_seq` is applied, and some past a
    gap may be. Updates other processes wrote arrive over the bus, where one can be lost or come out
    of order; the log has them all, so a gap is filled from the store. Each update new to the room
    goes to `apply`, once, in the order it arrived."""

    def __init__(self, cart_id: str, last_seq: int, store: Store, metrics: Any,
                 apply: Callable[[bytes], None]) -> None:
        self.cart_id, self.store, self.metrics, self._apply = cart_id, store, metrics, apply
        self.last_seq = last_seq  # every update up to here is applied (contiguous)
        self._ahead: set[int] = set()  # applied updates past a gap
        self._catching_up: asyncio.Future[bool] | None = None

    def mark(self, seq: int) -> None:
        """The update at `seq` is applied (this room's own write, or one it caught up with)."""
        if seq == self.last_seq + 1:
            self.last_seq = seq
            while self.last_seq + 1 in self._ahead:
                self.last_seq += 1
                self._ahead.discard(self.last_seq)
        elif seq > self.last_seq:
            self._ahead.add(seq)

    def seen(self, seq: int) -> bool:
        return seq <= self.last_seq or seq in self._ahead

    def on_update(self, seq: int, update: bytes) -> None:
        """Another process's update, as the bus brought it."""
        if self.seen(seq):
            return
        if seq == self.last_seq + 1:
            self.mark(seq)
            self._apply(update)
        else:
            self.run()  # a gap: the log has what the bus lost or reordered

    def run(self) -> asyncio.Future[bool]:
        """Applies whatever the store has past `last_seq` (one catch-up at a time);
        the result says whether anything new arrived."""
        if self._catching_up is None or self._catching_up.done():
            self._catching_up = asyncio.ensure_future(self._catch_up())
        return self._catching_up

    async def _catch_up(self) -> bool:
        applied = False
        try:
            for seq, update in await self.store.load_since(self.cart_id, self.last_seq):
                if not self.seen(seq):
                    self.mark(seq)
                    self._apply(update)
                    self.metrics.caught_up(1)
                    applied = True
        except Exception as exc:  # Redis away: the reconnect hook tries again
            log.warning("cart %s: catch-up failed: %s", self.cart_id, exc)
        return applied
