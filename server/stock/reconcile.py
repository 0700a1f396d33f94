"""What a cart's `server.holds` should say, given what the stock authority holds: the one comparison
that a room reload, a bus reconnect, checkout, payment and a read of an unloaded cart share.

The authority decides first and the document follows, so a crash in between leaves the document
behind: a hold shown `held` that ran out (the expiry notice was lost) or a line never shown its
decision. The authority is the truth; this says how to show it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from ...crdt import CartDoc
from ...crdt.cart import plain
from ..store import HoldRow
from . import Want

LIVE = ("held", "partial")  # statuses that claim units


@dataclass
class HoldSync:
    """How to bring the shown holds in line with the authority."""

    show: dict[str, dict[str, Any]] = field(default_factory=dict)  # entries of `server.holds` to write
    reserve: set[str] = field(default_factory=set)  # lines whose hold is not theirs (another SKU, more than wanted)


def compare(shown: dict[str, Any], wants: dict[str, Want], held: dict[str, HoldRow], now_ms: int) -> HoldSync:
    """Compares the shown holds of the lines in `wants` with the authority's holds (`held`).

    A hold the authority has for a line's SKU, up to its qty, is shown as it is. A live entry the
    authority lacks is shown as the authority ended it: `expired` once its time is past, else
    `released`. A line with no entry and no hold is left alone (not yet decided).
    """
    sync = HoldSync()
    for line_id, (sku, qty) in wants.items():
        entry, hold = shown.get(line_id), held.get(line_id)
        if hold is not None and hold.sku == sku and hold.qty <= qty:
            truth = {"status": "held" if hold.qty == qty else "partial", "qty": hold.qty,
                     "expiresAt": hold.expires_at, "sku": sku}
            if not isinstance(entry, dict) or any(entry.get(k) != v for k, v in truth.items()):
                sync.show[line_id] = truth
        elif hold is not None:
            sync.reserve.add(line_id)  # the authority puts it right (gives back another SKU or the surplus)
        elif isinstance(entry, dict) and entry.get("status") in LIVE:
            expires = entry.get("expiresAt")
            ended = "expired" if isinstance(expires, (int, float)) and expires <= now_ms else "released"
            sync.show[line_id] = {"status": ended, "qty": 0, "expiresAt": None, "sku": sku}
    return sync


def sync_of(cart: CartDoc, held: dict[str, HoldRow], now_ms: int, skip: Iterable[str] = ()) -> HoldSync:
    """`compare` for a cart document's lines (but `skip`) and the holds it shows."""
    with cart.doc.transaction():
        shown = plain(cart.server.get("holds") or {})
    wanted = cart.wanted(set(cart.lines.keys()) - set(skip))
    return compare(shown, {line: want for line, want in wanted.items() if want}, held, now_ms)
