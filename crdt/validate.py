"""Decides whether a client update may be applied to a cart document (the schema rules of DESIGN.md)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

from pycrdt import Array, Doc, Map, Text, get_update

from . import raw
from .schema import (
    CLIENT_ROOTS, LINE_FIELDS, MAX_SAFE_INTEGER, META_FIELDS, ROOTS, Catalog, Limits, Product,
)
from .details import check_details
from .updates import (
    MalformedUpdate, UpdateShape, keyless_in_map, missing_dependencies, read_shape, read_state_vector,
)


@dataclass(frozen=True)
class Ok:
    pass


@dataclass(frozen=True)
class Rejected:
    reason: str
    sku: str | None = None  # set when the broken rule is an unknown SKU
    missing: bool = False  # the update depends on items this doc has not seen (yet)


Verdict = Union[Ok, Rejected]
OK = Ok()


class Touches:
    """What an armed transaction touched, as the root observers record it.

    The observers live inside the doc, in yrs, where Python's GC cannot see them: what they
    hold must not hold the doc (as a Watcher or a CartDoc does), or the doc and its owner
    form a cycle that is never collected. So they are bound to this, which holds no doc.
    """

    def __init__(self) -> None:
        self.armed = False
        self.reset()

    def reset(self) -> None:
        self.touched_lines: set[str] = set()
        self.added_lines: set[str] = set()  # new keys under `lines`
        self.removed_lines: set[str] = set()
        self.lines_added = False
        self.touched_meta: set[str] = set()
        self.touched_server = False

    def on_lines(self, events: list[Any]) -> None:
        if not self.armed:
            return
        for ev in events:
            if ev.path:
                self.touched_lines.add(str(ev.path[0]))
            else:
                for key, change in ev.keys.items():
                    self.touched_lines.add(key)
                    action = change.get("action")
                    if action == "add":
                        self.added_lines.add(key)
                    elif action == "delete":
                        self.removed_lines.add(key)
                    if action != "delete":
                        self.lines_added = True

    def on_meta(self, events: list[Any]) -> None:
        if not self.armed:
            return
        for ev in events:
            if ev.path:
                self.touched_meta.add(str(ev.path[0]))
            else:
                self.touched_meta.update(ev.keys)

    def on_server(self, events: list[Any]) -> None:
        if self.armed:
            self.touched_server = True


class Watcher:
    """Observes a doc's roots and records what a client transaction touched (in `touches`).

    Keeping the subscriptions on the instance matters: pycrdt drops an observer
    whose Subscription object is garbage-collected.
    """

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.lines: Map = doc.get("lines", type=Map)
        self.meta: Map = doc.get("meta", type=Map)
        self.server: Map = doc.get("server", type=Map)
        self.touches = Touches()
        self.shape: UpdateShape | None = None
        self.accepted = b""  # what of the last client update is new: the bytes to store and relay
        self.types: dict[tuple[int, int], int] = {}  # every shared type in the doc, by item id
        self.state_vector = read_state_vector(doc.get_state())  # the doc's, kept current by CartDoc
        self.reset()
        # The raw (yrs) subscriptions: pycrdt's own wrapper converts every event's values
        # into Python objects first, which would charge each server write ~30 µs here.
        touches = self.touches
        self._subs = [
            self.lines.integrated.observe_deep(touches.on_lines),
            self.meta.integrated.observe_deep(touches.on_meta),
            self.server.integrated.observe_deep(touches.on_server),
        ]

    def reset(self) -> None:
        self.touches.reset()
        # What each touched line asks of stock once judged: (sku, qty), or None if removed.
        self.wants: dict[str, tuple[str, int] | None] = {}
        self.unknown_sku: str | None = None


def apply_checked(watcher: Watcher, update: bytes, catalog: Catalog, limits: Limits) -> Verdict:
    """Applies a client update to the watched doc and judges it.

    On Rejected the doc may hold part of the update: the caller must rebuild it.
    """
    try:
        shape = read_shape(update)
    except MalformedUpdate as exc:
        return Rejected(f"malformed update: {exc}")
    parent = keyless_in_map(shape, watcher.types, ROOTS)
    if parent == "server":
        return Rejected("clients may not write the 'server' root")
    if parent is not None:
        return Rejected("list content inside a map (lines, meta, a line and personalisation take keyed entries only)")
    doc = watcher.doc
    watcher.shape = shape
    before = watcher.state_vector
    watcher.accepted = update
    if any(start < before.get(client, 0) or client == doc.client_id for client, (start, _) in shape.adds.items()):
        # Items the cart has already (a stock client re-sends an edit in its sync
        # step 2 when it edits during the handshake). A no-op here, but another
        # process that has not seen the originals yet would take a forged copy as the
        # truth: only the new part is kept, stored and relayed. (Items in the server's
        # own name are always checked so: its writes do not keep `state_vector` current.)
        try:
            watcher.accepted = get_update(update, doc.get_state())
        except ValueError as exc:  # "Cannot diff updates": pycrdt cannot read it either
            return Rejected(f"malformed update: {exc}")
    watcher.reset()
    touches = watcher.touches
    touches.armed = True
    try:
        after = read_state_vector(raw.apply_update(doc, update))
    except Exception as exc:  # yrs refuses some malformed input itself
        return Rejected(f"malformed update: {exc}")
    finally:
        touches.armed = False
    reason = missing_dependencies(shape, after)
    if reason is not None:
        return Rejected(reason, missing=True)
    watcher.state_vector = after  # kept for the next update (a rejection rebuilds it anyway)
    reason = judge(watcher, catalog, limits)
    if not reason:
        return OK
    return Rejected(reason, watcher.unknown_sku)


def judge(w: Watcher, catalog: Catalog, limits: Limits) -> str | None:
    """Checks what the last client transaction touched; returns the broken rule or None."""
    touches = w.touches
    if touches.touched_server:
        return "clients may not write the 'server' root"
    unknown = (w.shape.roots if w.shape is not None else set(w.doc.keys())) - ROOTS
    if unknown:
        return f"unknown root {sorted(unknown)[0]!r} (allowed: lines, meta)"
    with raw.transaction(w.doc) as txn:
        lines = w.lines.integrated
        if touches.lines_added and lines.len(txn) > limits.max_lines:
            return f"too many lines (max {limits.max_lines})"
        for line_id in touches.touched_lines:
            if not lines.has(txn, line_id):  # deleted (a key set to null is still there)
                w.wants[line_id] = None
                continue
            line = lines.get(txn, line_id)
            if not isinstance(line, raw.RawMap):
                return f"line {line_id!r} must be a map"
            values = raw.fields(line, txn)
            reason = check_line_fields(line_id, values, catalog, limits, lambda: w.lines[line_id]["personalisation"])
            if reason:
                sku = values.get("sku")
                w.unknown_sku = sku if isinstance(sku, str) and catalog(sku) is None else None
                return reason
            w.wants[line_id] = (values["sku"], int(values["qty"]))
        for key in touches.touched_meta:
            if key in w.meta:
                reason = check_meta(key, w.meta[key], limits)
                if reason:
                    return reason
    return None


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_ms(value: Any) -> bool:
    """A time in ms as JavaScript holds it exactly (Date.now(), or with a fraction)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= MAX_SAFE_INTEGER


def _short_string(value: Any, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit


def check_line(line_id: str, line: Any, catalog: Catalog, limits: Limits) -> str | None:
    """Schema of one line (a Y.Map): sku, qty, who/where/when, personalisation."""
    if not isinstance(line, Map):
        return f"line {line_id!r} must be a map"
    with raw.transaction(line.doc) as txn:
        return check_line_fields(line_id, raw.fields(line.integrated, txn), catalog, limits,
                                 lambda: line["personalisation"])


def check_line_fields(line_id: str, line: dict[str, Any], catalog: Catalog, limits: Limits,
                      personalisation: Callable[[], Any]) -> str | None:
    """`check_line` on the line's fields as `raw.fields` reads them; `personalisation` gives
    that field as a pycrdt type (only personalised lines need it)."""
    where = f"line {line_id!r}"
    if len(line_id) > limits.max_string_chars:
        return "line id too long"
    extra = line.keys() - LINE_FIELDS
    if extra:
        return f"{where}: unknown field {sorted(extra)[0]!r}"
    sku = line.get("sku")
    if not isinstance(sku, str):
        return f"{where}: sku must be a string"
    product = catalog(sku)
    if product is None:
        return f"{where}: unknown sku {sku!r}"
    qty = line.get("qty")
    max_qty = product.max_qty or limits.max_qty
    if not _is_int(qty) or not 1 <= qty <= max_qty:
        return f"{where}: qty must be an integer in 1..{max_qty}"
    for name in ("addedBy", "channel"):
        if name in line and not _short_string(line[name], limits.max_string_chars):
            return f"{where}: {name} must be a non-empty string"
    if "addedAt" in line and not _is_ms(line["addedAt"]):
        # A BigInt, NaN or ±Infinity would break every JavaScript client sorting lines by it.
        return f"{where}: addedAt must be a number of ms in 0..{MAX_SAFE_INTEGER}"
    if "personalisation" in line:
        return check_personalisation(where, personalisation(), product)
    return None


def check_personalisation(where: str, value: Any, product: Product) -> str | None:
    if not isinstance(value, Map):
        return f"{where}: personalisation must be a map"
    for name in value.keys():
        spec = product.personalisation.get(name)
        if spec is None:
            return f"{where}: {product.sku!r} has no personalisation field {name!r}"
        content = value.get(name)
        if spec.kind == "text":
            if not isinstance(content, Text):
                return f"{where}: personalisation {name!r} must be text"
            chunks = content.diff()
            if any(not isinstance(chunk, str) or attrs for chunk, attrs in chunks):
                return f"{where}: personalisation {name!r} takes plain text (no embeds or formatting)"
            if sum(len(chunk) for chunk, _ in chunks) > spec.max_length:  # characters, not bytes
                return f"{where}: personalisation {name!r} is over {spec.max_length} characters"
        else:
            if not isinstance(content, Array):
                return f"{where}: personalisation {name!r} must be a list"
            if len(content) > spec.max_items:
                return f"{where}: personalisation {name!r} has over {spec.max_items} entries"
            for entry in content:
                if not isinstance(entry, str) or len(entry) > spec.max_length:
                    return f"{where}: personalisation {name!r} entries must be strings of at most {spec.max_length} characters"
    return None


def check_meta(key: str, value: Any, limits: Limits) -> str | None:
    if key not in META_FIELDS:
        return f"meta: unknown field {key!r} (allowed: note, discountCodes, details)"
    if key == "details":
        return check_details(value)
    if key == "note":
        if not isinstance(value, str) or len(value) > limits.max_note_chars:
            return f"meta: note must be a string of at most {limits.max_note_chars} characters"
        return None
    if not isinstance(value, Array):
        return "meta: discountCodes must be a list"
    if len(value) > limits.max_discount_codes:
        return f"meta: at most {limits.max_discount_codes} discount codes"
    for code in value:
        if not _short_string(code, limits.max_code_chars):
            return f"meta: discount codes must be strings of 1..{limits.max_code_chars} characters"
    return None


def validate(before: Doc, update: bytes, catalog: Catalog, limits: Limits = Limits()) -> Verdict:
    """Would `update` be accepted on a cart whose state is `before`? Leaves `before` untouched.

    Convenience form for tests and tools; rooms keep a CartDoc, which checks in place.
    """
    from .cart import CartDoc

    cart = CartDoc(before.get_update())
    return cart.apply_client_update(update, catalog, limits)


__all__ = ["CLIENT_ROOTS", "OK", "Ok", "Rejected", "Touches", "Verdict", "Watcher", "apply_checked", "validate"]
