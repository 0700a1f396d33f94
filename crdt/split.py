"""Splitting a cart: chosen lines leave it for a new cart of the same owner (DESIGN.md,
`POST /api/carts/{id}/split`). Pure: reads and writes the two documents; the server moves each
line's hold with the stock authority (`transfer`, same line id in the new cart) in between."""
from __future__ import annotations

from typing import Any, Sequence

from pycrdt import Map

from .cart import CartDoc, new_line, plain


class SplitError(ValueError):
    """A split that cannot be done; nothing was written. Codes: bad_lines, unknown_lines, split_all."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def check_split(cart: CartDoc, line_ids: Any) -> list[str]:
    """The lines to move, checked: some of the cart's own lines, never all of them."""
    if not isinstance(line_ids, list) or not line_ids or not all(isinstance(x, str) for x in line_ids):
        raise SplitError("bad_lines", "lineIds is a non-empty list of line ids")
    chosen = list(dict.fromkeys(line_ids))
    with cart.doc.transaction():
        present = set(cart.lines.keys())
    unknown = [x for x in chosen if x not in present]
    if unknown:
        raise SplitError("unknown_lines", f"not lines of this cart: {', '.join(unknown[:10])}")
    if len(chosen) >= len(present):
        raise SplitError("split_all", "a split leaves at least one line in the cart (this would move them all)")
    return chosen


def take_lines(source: CartDoc, line_ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], bytes]:
    """Removes the lines from `source`, in one transaction; returns what they were and the update."""
    taken: dict[str, dict[str, Any]] = {}

    def change(cart: CartDoc) -> None:
        for line_id in line_ids:
            line = cart.lines.get(line_id)
            if isinstance(line, Map):
                taken[line_id] = plain(line)
                del cart.lines[line_id]
    update = source.write(change)
    return taken, update


def put_lines(target: CartDoc, lines: dict[str, dict[str, Any]]) -> bytes:
    """Writes the lines into `target` under the same ids (who added them, when and how kept)."""
    def change(cart: CartDoc) -> None:
        for line_id, data in lines.items():
            cart.lines[line_id] = new_line(
                str(data.get("sku")), int(data.get("qty") or 1), str(data.get("addedBy") or ""),
                str(data.get("channel") or "api"), int(data.get("addedAt") or 0), data.get("personalisation") or None)
    return target.write(change)
