"""Merging one cart into another (DESIGN.md, `POST /api/sessions/claim` and `/api/carts/{id}/merge`).

Pure: reads two `CartDoc`s, returns a deterministic `MergePlan`, and applies the
target's edits in one server transaction. Stock is not touched here: the server
moves each hold with the stock actor (`StockAuthority.transfer(src, dst, keep)`),
following `MergePlan.moves`, then writes `server.holds` itself.

The rules (commercetools' default merge rule for the same wish made on two channels):

- A source line without personalisation whose SKU the target has on a line without
  personalisation is *combined*: that target line keeps its id and gets the larger of
  the quantities; the source line's hold moves onto it, and what the larger quantity
  does not need goes back to stock. Several such source lines of one SKU combine into
  the same target line, with the largest of all the quantities involved.
- Every other source line is *copied* (same sku, qty, addedBy, channel, addedAt and
  personalisation content) under its own id, or under a derived id (`{id}-m`,
  `{id}-m2`, …) when the target already uses it; its hold moves with it. Source lines
  of one non-personalised SKU the target lacks become one copied line (that of the
  earliest source line) with the largest of their quantities.
- Meta: the note is carried over (target empty: the source note; both set and
  different: target + "\\n" + source, cut to `max_note_chars`); the discount codes are
  the ordered union, the target's first, capped at `max_discount_codes`.
- Chat: the source's messages the target lacks are appended to the target's, oldest
  first, as they were (id, author, role, text, time): the conversation moves with the lines.

Server sequence: `check_mergeable` → `plan_merge` → `merged_source_status` (the
source takes no more edits) → one `transfer` per move → `apply_merge` (persist and
relay its update) → write `server.holds` of the lines the moves touched
(`settle_holds` says what they hold when every source line held something). Calling
`apply_merge` right after `plan_merge`, before the transfers, is just as right and
leaves no window for target edits to slip in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from pycrdt import Array, Map, Text

from . import chat as chat_rules, server_root
from .cart import CartDoc, Origin, plain
from .schema import Limits

COPIED_FIELDS = ("sku", "qty", "addedBy", "channel", "addedAt")


class MergeError(Exception):
    """A merge that cannot be done; nothing was written.

    Codes: same_cart, already_merged (`into` names the cart it went into), not_open,
    too_many_lines, too_large, stale_plan.
    """

    def __init__(self, code: str, message: str, into: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.into = into

    def __repr__(self) -> str:
        return f"MergeError({self.code!r}, {self.message!r})"


@dataclass(frozen=True)
class HoldMove:
    """Move the hold of source line `src_line` onto target line `dst_line`.

    `keep` caps what `dst_line` holds afterwards (its own hold plus the moved one):
    it is the line's qty after the merge. The rest goes back to stock, at once and
    only once: exactly `StockAuthority.transfer((src, src_line), (dst, dst_line), keep)`.
    """

    src_line: str
    dst_line: str
    keep: int
    sku: str = ""


@dataclass(frozen=True)
class NewLine:
    """A line to create in the target: a copy of source line `source_line`."""

    line_id: str
    source_line: str
    fields: dict[str, Any]  # sku, qty, and addedBy/channel/addedAt when the source has them
    personalisation: dict[str, str | list[str]] | None = None


@dataclass(frozen=True)
class Combine:
    """Source lines join target line `line_id`, which ends with at least `qty` (it had `was`).

    `fields` are those of the earliest source line joining it (with `qty`): should a
    client remove the target line between the plan and its application (the server
    moves the holds in between), the line is made again from them under the same id,
    so the holds moved onto it still have their line.
    """

    line_id: str
    qty: int
    was: int
    sku: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class MergePlan:
    moves: list[HoldMove]
    create: list[NewLine]
    combine: list[Combine]  # target lines that source lines join (qty raised where `qty > was`)
    note: str | None  # the target's new note; None: unchanged
    add_codes: list[str]  # appended to the target's discountCodes
    discount_codes: list[str]  # the target's discount codes after the merge
    line_map: dict[str, str] = field(default_factory=dict)  # source line -> target line
    line_count: int = 0  # target lines after the merge
    chat: list[dict[str, Any]] = field(default_factory=list)  # source messages appended to the target's
    details: dict[str, Any] = field(default_factory=dict)  # checkout details the target lacks (address: its own fields)

    @property
    def raise_qty(self) -> list[Combine]:
        """The target lines whose qty goes up."""
        return [c for c in self.combine if c.qty > c.was]

    @property
    def empty(self) -> bool:
        return not (self.create or self.combine or self.note is not None or self.add_codes or self.chat
                    or self.details)


@dataclass(frozen=True)
class HoldOutcome:
    """What the moves leave: units held per target line they touch, units back to stock per SKU."""

    held: dict[str, int]
    released: dict[str, int]

    @property
    def released_total(self) -> int:
        return sum(self.released.values())


# -- checks -------------------------------------------------------------------


def cart_status(cart: CartDoc) -> tuple[str, str | None]:
    """(`server.status`, `server.mergedInto`), read in one transaction; a cart without status is open."""
    with cart.doc.transaction():
        status = cart.server.get("status")
        into = cart.server.get("mergedInto")
    return (status if isinstance(status, str) else "open"), (into if isinstance(into, str) else None)


def check_mergeable(source: CartDoc, target: CartDoc,
                    source_id: str | None = None, target_id: str | None = None) -> None:
    """Raises MergeError unless `source` may be merged into `target` now."""
    if source is target or source.doc is target.doc or (source_id is not None and source_id == target_id):
        raise MergeError("same_cart", "a cart cannot be merged into itself")
    status, into = cart_status(source)
    if status == "merged":
        name = f"cart {source_id}" if source_id else "the source cart"
        raise MergeError("already_merged", f"{name} was already merged into {into}", into=into)
    if status != "open":
        raise MergeError("not_open", f"source cart is {status.replace('_', ' ')}")
    status, into = cart_status(target)
    if status == "merged":
        raise MergeError("not_open", f"target cart was merged into {into}", into=into)
    if status != "open":
        raise MergeError("not_open", f"target cart is {status.replace('_', ' ')}")


# -- planning -------------------------------------------------------------------


@dataclass
class _Line:
    line_id: str
    sku: str
    qty: int
    data: dict[str, Any]
    personalisation: dict[str, str | list[str]] | None

    @property
    def order(self) -> tuple[float, str]:
        added = self.data.get("addedAt")
        number = added if isinstance(added, (int, float)) and not isinstance(added, bool) else 0
        return (number, self.line_id)


def _read_lines(cart: CartDoc) -> list[_Line]:
    out: list[_Line] = []
    for line_id, line in cart.lines.items():
        if not isinstance(line, Map):
            continue  # not a line (the schema never lets one in)
        data = {k: plain(line[k]) for k in COPIED_FIELDS if k in line}
        pers = line.get("personalisation")
        personalisation: dict[str, str | list[str]] | None = None
        if isinstance(pers, Map) and len(pers):
            personalisation = {}
            for name, content in sorted(pers.items()):
                if isinstance(content, Text):
                    personalisation[name] = str(content)
                elif isinstance(content, Array):
                    personalisation[name] = [plain(v) for v in content]
        qty = data.get("qty")
        out.append(_Line(line_id, str(data.get("sku")), int(qty) if isinstance(qty, (int, float)) else 0,
                         data, personalisation))
    out.sort(key=lambda ln: ln.order)
    return out


def _read_meta(cart: CartDoc) -> tuple[str, list[str]]:
    note = cart.meta.get("note")
    codes = cart.meta.get("discountCodes")
    return (note if isinstance(note, str) else ""), ([c for c in codes if isinstance(c, str)]
                                                      if isinstance(codes, Array) else [])


def _read_details(cart: CartDoc) -> dict[str, Any]:
    details = cart.meta.get("details")
    return plain(details) if isinstance(details, Map) else {}


def merge_details(target: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """What of the source's checkout details fills the target's gaps: a field the target has
    (typed on this device or by staff) is never overwritten; the address merges field by field."""
    def empty(value: Any) -> bool:
        return not (isinstance(value, str) and value.strip())

    fill = {k: v for k, v in source.items() if k != "address" and not empty(v) and empty(target.get(k))}
    address, have = source.get("address"), target.get("address")
    if isinstance(address, dict):
        have = have if isinstance(have, dict) else {}
        more = {k: v for k, v in address.items() if not empty(v) and empty(have.get(k))}
        if more:
            fill["address"] = more
    return fill


def _fresh_id(line_id: str, taken: set[str], limit: int) -> str:
    n = 1
    while True:
        suffix = "-m" if n == 1 else f"-m{n}"
        candidate = line_id[: max(0, limit - len(suffix))] + suffix
        if candidate not in taken:
            return candidate
        n += 1


def merge_note(target_note: str, source_note: str, limits: Limits) -> str | None:
    """The target's note after the merge, or None when it stays as it is."""
    if not source_note or source_note == target_note:
        return None
    note = source_note if not target_note else f"{target_note}\n{source_note}"
    note = note[: limits.max_note_chars]
    return None if note == target_note else note


def merge_codes(target_codes: list[str], source_codes: list[str], limits: Limits) -> list[str]:
    """The source codes to append to the target's: ordered union, target first, capped."""
    room = max(0, limits.max_discount_codes - len(target_codes))
    seen = set(target_codes)
    add: list[str] = []
    for code in source_codes:
        if len(add) >= room:
            break
        if code not in seen:
            seen.add(code)
            add.append(code)
    return add


def plan_merge(source: CartDoc, target: CartDoc, *, limits: Limits = Limits(),
               source_id: str | None = None, target_id: str | None = None) -> MergePlan:
    """Decides the merge of `source` into `target` (deterministic; each doc read in one transaction)."""
    check_mergeable(source, target, source_id, target_id)
    with source.doc.transaction():
        src_lines = _read_lines(source)
        src_note, src_codes = _read_meta(source)
        src_chat = chat_rules.messages(source.chat)
        src_details = _read_details(source)
    with target.doc.transaction():
        dst_chat = chat_rules.messages(target.chat)
        dst_lines = _read_lines(target)
        dst_ids = set(target.lines.keys())
        dst_note, dst_codes = _read_meta(target)
        dst_details = _read_details(target)

    # The target line each non-personalised SKU combines into: the one with the most
    # units (ties: earliest addedAt, then id), so the fewest units end up wanted twice.
    combine_into: dict[str, _Line] = {}
    for line in dst_lines:
        if line.personalisation is None:
            best = combine_into.get(line.sku)
            if best is None or line.qty > best.qty:
                combine_into[line.sku] = line

    groups: dict[str, list[_Line]] = {}  # non-personalised source lines by SKU, earliest first
    copies: list[_Line] = []  # source lines that become a target line (personalised, or first of a new SKU)
    for line in src_lines:
        if line.personalisation is None:
            group = groups.setdefault(line.sku, [])
            if not group and line.sku not in combine_into:
                copies.append(line)
            group.append(line)
        else:
            copies.append(line)

    # Ids: a copy keeps its own id when the target does not use it; the others get
    # a derived one, never taken by the target nor by another copy.
    taken = set(dst_ids)
    new_id: dict[str, str] = {}
    for line in copies:
        if line.line_id not in taken:
            new_id[line.line_id] = line.line_id
    taken |= set(new_id.values())
    for line in copies:
        if line.line_id not in new_id:
            new_id[line.line_id] = _fresh_id(line.line_id, taken, limits.max_string_chars)
            taken.add(new_id[line.line_id])

    moves: list[HoldMove] = []
    create: list[NewLine] = []
    combines: list[Combine] = []
    line_map: dict[str, str] = {}
    for line in copies:
        if line.personalisation is not None:
            fields = dict(line.data, qty=line.qty)
            create.append(NewLine(new_id[line.line_id], line.line_id, fields, line.personalisation))
    for sku in sorted(groups):
        group = groups[sku]
        top = max(ln.qty for ln in group)
        existing = combine_into.get(sku)
        if existing is not None:
            dst, qty = existing.line_id, max(top, existing.qty)
            combines.append(Combine(dst, qty, existing.qty, sku, dict(group[0].data, qty=qty)))
        else:
            first = group[0]
            dst, qty = new_id[first.line_id], top
            create.append(NewLine(dst, first.line_id, dict(first.data, qty=qty), None))
    for line in src_lines:
        if line.personalisation is None:
            existing = combine_into.get(line.sku)
            dst = existing.line_id if existing is not None else new_id[groups[line.sku][0].line_id]
            keep = max(max(ln.qty for ln in groups[line.sku]), existing.qty if existing is not None else 0)
        else:
            dst, keep = new_id[line.line_id], line.qty
        line_map[line.line_id] = dst
        moves.append(HoldMove(line.line_id, dst, keep, line.sku))
    create.sort(key=lambda n: n.line_id)

    line_count = len(dst_ids) + len(create)
    if line_count > limits.max_lines:
        raise MergeError("too_many_lines",
                         f"the merged cart would have {line_count} lines (max {limits.max_lines})")

    note = merge_note(dst_note, src_note, limits)
    add_codes = merge_codes(dst_codes, src_codes, limits)
    plan = MergePlan(moves=moves, create=create, combine=combines, note=note, add_codes=add_codes,
                     discount_codes=dst_codes + add_codes, line_map=line_map, line_count=line_count,
                     chat=chat_rules.to_copy(src_chat, dst_chat), details=merge_details(dst_details, src_details))
    _check_size(source, target, plan, limits)
    return plan


def _check_size(source: CartDoc, target: CartDoc, plan: MergePlan, limits: Limits) -> None:
    """A merged cart over `max_doc_bytes` would refuse every later client update: refuse the merge instead.

    The copies cost at most what they cost in the source, so the exact (dry-run) size
    is computed only when that bound passes the limit.
    """
    if plan.empty:
        return
    target_size = len(target.diff())
    if target_size + len(source.diff()) <= limits.max_doc_bytes:
        return
    scratch = CartDoc(target.diff())
    scratch.write(lambda cart: _edit(cart, plan))
    size = len(scratch.diff())
    if size > limits.max_doc_bytes and size > target_size:
        raise MergeError("too_large",
                         f"the merged cart would be {size} bytes (max {limits.max_doc_bytes})")


# -- applying -----------------------------------------------------------------------


def _line_map(new: NewLine) -> Map:
    fields: dict[str, Any] = dict(new.fields)
    if new.personalisation:
        fields["personalisation"] = Map({
            name: Text(v) if isinstance(v, str) else Array(list(v))
            for name, v in new.personalisation.items()
        })
    return Map(fields)


def _personalised(line: Map) -> bool:
    pers = line.get("personalisation")
    return isinstance(pers, Map) and len(pers) > 0


def _edit(cart: CartDoc, plan: MergePlan) -> None:
    lines = cart.lines
    # Check everything before the first write: a plan that no longer fits leaves the target untouched.
    for new in plan.create:
        if new.line_id in lines:
            raise MergeError("stale_plan", f"line id {new.line_id!r} is taken in the target since the plan")
    for change in plan.combine:
        line = lines.get(change.line_id)
        if change.line_id in lines and (
                not isinstance(line, Map) or line.get("sku") != change.sku or _personalised(line)):
            raise MergeError("stale_plan", f"target line {change.line_id!r} became another line since the plan")
    for new in plan.create:
        lines[new.line_id] = _line_map(new)
    for change in plan.combine:
        if change.line_id not in lines:  # removed by a client since the plan: the merge brings it back
            lines[change.line_id] = Map(dict(change.fields))
            continue
        line = lines[change.line_id]
        current = line.get("qty")
        if not isinstance(current, (int, float)) or current < change.qty:  # never lowers a newer qty
            line["qty"] = change.qty
    meta = cart.meta
    if plan.details:
        details = meta.get("details")
        if not isinstance(details, Map):
            details = meta["details"] = Map()
        for key, value in plan.details.items():
            if key != "address":
                details[key] = value
            elif isinstance(details.get("address"), Map):
                for k, v in value.items():
                    details["address"][k] = v
            else:
                details["address"] = Map(dict(value))
    if plan.note is not None:
        meta["note"] = plan.note
    if plan.add_codes:
        codes = meta.get("discountCodes")
        if isinstance(codes, Array):
            have = list(codes)
            # The plan's list is within the cap; a client may have added codes since.
            room = max(0, len(plan.discount_codes) - len(have))
            add = [c for c in plan.add_codes if c not in have][:room]
            if add:
                codes.extend(add)
        else:
            meta["discountCodes"] = Array(list(plan.add_codes))
    if plan.chat:  # a message already there (the same merge applied twice) is not repeated
        chat_rules.append(cart.chat, chat_rules.to_copy(plan.chat, chat_rules.messages(cart.chat)))


def apply_merge(target: CartDoc, plan: MergePlan, origin: Origin = Origin.SERVER) -> bytes:
    """Makes the plan's target edits in one recorded transaction; returns its update (to persist and relay).

    Stock and `server.holds` are left alone. Target edits made since the plan are
    kept: a qty a client raised is not lowered, a combined line a client removed is made
    again (its holds were moved onto it). Only when an id the plan uses now names
    another line (a line created under a new line's id, or a combined line replaced by
    one of another SKU or with personalisation) does it raise MergeError("stale_plan"),
    writing nothing.
    """
    if plan.empty:
        return b""
    return target.write(lambda cart: _edit(cart, plan), origin=origin)


def merged_source_status(source: CartDoc, target_id: str) -> bytes:
    """Marks the source merged into `target_id` in one transaction; returns the update."""
    return server_root.mark_merged(source, target_id)


def settle_holds(plan: MergePlan, source_held: Mapping[str, int],
                 target_held: Mapping[str, int]) -> HoldOutcome:
    """What the target lines the moves reach hold after them, and what goes back to stock, per SKU.

    `source_held`/`target_held`: units each line holds before the merge (missing: 0).
    Each move adds the source line's units to its destination and caps it at `keep`.
    """
    held: dict[str, int] = {}
    released: dict[str, int] = {}
    for move in plan.moves:
        current = held.get(move.dst_line, int(target_held.get(move.dst_line, 0)))
        total = current + int(source_held.get(move.src_line, 0))
        kept = min(move.keep, total)
        held[move.dst_line] = kept
        if total > kept:
            released[move.sku] = released.get(move.sku, 0) + total - kept
    return HoldOutcome(held, released)


__all__ = [
    "Combine", "HoldMove", "HoldOutcome", "MergeError", "MergePlan", "NewLine", "apply_merge",
    "cart_status", "check_mergeable", "merge_codes", "merge_note", "merged_source_status", "plan_merge",
    "settle_holds",
]
