"""One room's holds following its lines in the background: reconciled with the stock authority in turn, audited, shown."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Iterable

from ...crdt import CartDoc
from ..stock import Decision, StockAuthority, Want
from ..stock.reconcile import sync_of
from ..store import HoldRow

log = logging.getLogger("livecart.rooms")

UNREAD: Want = ("", -1)  # a line to reconcile whose want is read from the doc when its turn comes

HoldEntries = dict[str, dict[str, Any] | None]  # lineId -> what `server.holds` shows (None: no hold)


def hold_entry(decision: Decision, want: Want | None) -> dict[str, Any] | None:
    """A stock decision as `server.holds[lineId]` shows it (None: the line is gone)."""
    return {**decision.to_json(), "sku": want[0]} if want else None


class Holds:
    """The background follow-up of one room's holds: lines whose holds must follow their quantities
    are asked of the stock authority one batch at a time, in order, with the checks of the shown
    holds against the authority run in turn between them; each outcome is written with `write`
    (the room's `commit_holds`, which prices what it writes)."""

    def __init__(self, cart_id: str, cart: CartDoc, stock: StockAuthority, metrics: Any,
                 write: Callable[[HoldEntries], Awaitable[None]],
                 catch_up: Callable[[], Awaitable[bool]]) -> None:
        self.cart_id, self.cart, self.stock, self.metrics = cart_id, cart, stock, metrics
        self._write, self._catch_up = write, catch_up
        self._dirty_lines: dict[str, Want | None] = {}  # lines whose holds must follow; their want if known
        self._reconciling: asyncio.Future[None] | None = None
        self._repricing: asyncio.Future[None] | None = None
        self._audit = False  # a check of the shown holds against stock is asked for
        self._audit_before: dict[str, HoldRow] | None = None  # the holds it found before the doc was read

    def following(self) -> bool:
        """Lines wait for their holds, or a reconcile is in flight: a decision taken at once now
        would overtake it (so the edit pipeline leaves its edit to the background too)."""
        return bool(self._dirty_lines) or (self._reconciling is not None and not self._reconciling.done())

    def busy(self) -> bool:
        """Holds or prices being decided or written (an unload would cut them short)."""
        return any(f is not None and not f.done() for f in (self._reconciling, self._repricing))

    def follow(self, touched: Iterable[str], wants: dict[str, Want | None]) -> None:
        """An edit stock did not answer at once: the touched lines' holds follow, or, where it
        touched none (a typed code), its price does."""
        if touched:
            self.want(touched, wants)
        else:
            self.reprice_soon()

    def want(self, line_ids: Iterable[str], known: dict[str, Want | None] | None = None) -> None:
        """Asks the stock authority to match these lines' holds to their quantities (in the background).

        `known`: what validation already read of them (sku, qty; None: removed), so it is not read again.
        """
        for line_id in line_ids:
            self._dirty_lines[line_id] = known.get(line_id, UNREAD) if known else UNREAD
        if self._reconciling is None or self._reconciling.done():
            self._reconciling = asyncio.ensure_future(self._reconcile())

    def audit(self, before: dict[str, HoldRow] | None = None) -> None:
        """Has the background check that `server.holds` says what the stock authority holds (a
        crash can leave the doc behind it) run in turn with the holds edits ask for; holds whose
        line is gone go back. `before`: the cart's holds, read before its document was loaded."""
        self._audit, self._audit_before = True, before
        self.want(())

    async def show(self, held: dict[str, HoldRow], skip: Iterable[str] = ()) -> set[str]:
        """Writes into `server.holds` what the authority holds (`held`: its `holds_of` this cart) for
        the cart's lines but `skip`; returns the lines whose hold the authority must put right."""
        sync = sync_of(self.cart, held, int(time.time() * 1000), skip)
        if sync.show:
            await self._write(dict(sync.show))
        return sync.reserve

    def reprice_soon(self) -> None:
        # Two processes may each have priced a cart before seeing the other's holds;
        # whoever's price differs from the merged state writes it again (never both,
        # once they agree, because equal prices are not written).
        if self._repricing is None or self._repricing.done():
            self._repricing = asyncio.ensure_future(self._write({}))

    async def _reconcile(self) -> None:
        stock = self.stock
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
            calls = [stock.reserve(self.cart_id, line_id, *want) if want else stock.release(self.cart_id, line_id)
                     for line_id, want in wanted.items()]
            if len(calls) == 1:  # the usual case: one edited line, no task per call
                try:
                    results: list[Any] = [await calls[0]]
                except Exception as exc:
                    results = [exc]
            else:
                results = await asyncio.gather(*calls, return_exceptions=True)
            decisions: HoldEntries = {}
            for (line_id, want), result in zip(wanted.items(), results):
                if isinstance(result, BaseException):
                    log.error("cart %s line %s: stock failed: %s", self.cart_id, line_id, result)
                    self._dirty_lines.setdefault(line_id, UNREAD)
                    await asyncio.sleep(1)  # storage trouble: retry, not spin
                    continue
                decisions[line_id] = hold_entry(result, want)
                self.metrics.decided((result.status,))
            await self._write(decisions)

    async def _audit_holds(self, before: dict[str, HoldRow] | None) -> None:
        stock = self.stock
        try:
            if before is None:  # the holds first, then the doc: a hold seen here has its line stored
                before = await stock.holds_of(self.cart_id)
                await self._catch_up()
            after = await stock.holds_of(self.cart_id)  # and after the doc: a hold it shows is not missed
        except Exception as exc:  # the authority is away: a reconnect audits again
            log.warning("cart %s: holds not checked against stock: %s", self.cart_id, exc)
            return
        pending = set(self._dirty_lines)  # decided next anyway
        gone = set(before) - set(self.cart.lines.keys()) - pending
        self.want(await self.show(after, pending) | gone)
