"""Decides whether a client update may be applied to a cart document (the schema rules of DESIGN.md),
and returns the decision as a value: Accepted (with what the update touched and wants) or Rejected."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import AbstractSet, Any, Callable, ClassVar, Union

from pycrdt import Array, Doc, Map, Text, get_update

from . import chat, raw
from .chat import Author, ChatTouches
from .schema import (
    CLIENT_ROOTS, LINE_FIELDS, MAP_ROOTS, MAX_SAFE_INTEGER, META_FIELDS, ROOTS, Catalog, Limits, Product,
)
from .details import check_details
from .updates import (
    MalformedUpdate, UpdateShape, keyed_in_list, keyless_in_map, missing_dependencies, read_shape,
    read_state_vector,
)


Want = tuple[str, int]  # what a line asks of stock: (sku, qty)


@dataclass(slots=True)
class Accepted:
    """A client update the cart took, and what it decided: the value the edit pipeline acts on."""

    ok: ClassVar[bool] = True
    update: bytes  # the new part of the update: the bytes to store and relay
    touched: AbstractSet[str]  # line ids it added, changed or removed
    added: AbstractSet[str]  # new keys under `lines`
    removed: AbstractSet[str]
    wants: dict[str, Want | None]  # what each touched line asks of stock; None: removed (fresh per update)
    meta: AbstractSet[str]  # the `meta` keys it touched
    # For the cart's own bookkeeping (shared types, size bound, state vector):
    shape: UpdateShape = field(repr=False, compare=False)
    state_vector: dict[int, int] = field(repr=False, compare=False)
    chat: tuple[dict[str, Any], ...] = ()  # the messages it appended to `chat` (plain, judged)


@dataclass(frozen=True)
class Rejected:
    """A client update the cart refused (the doc is as it was). `code`: malformed, server_root,
    schema, chat (a forged author, an edited or deleted message, a bad one), chat_rate (more chat
    messages than the sender's rate allows), unknown_sku, missing (it depends on items this doc has
    not seen yet), too_large."""

    ok: ClassVar[bool] = False
    code: str
    reason: str
    sku: str | None = None  # set when the broken rule is an unknown SKU

    @property
    def missing(self) -> bool:
        return self.code == "missing"


Verdict = Union[Accepted, Rejected]


class Touches:
    """What an armed transaction touched, as the root observers record it.

    The observers live inside the doc, in yrs, where Python's GC cannot see them: what they
    hold must not hold the doc (as Roots or a CartDoc does), or the doc and its owner
    form a cycle that is never collected. So they are bound to this, which holds no doc.
    `reset` makes new sets, so a verdict may keep those of its update.
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
        self.chat = ChatTouches()

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

    def on_chat(self, events: list[Any]) -> None:
        if self.armed:
            self.chat.on_chat(events)


class Roots:
    """A doc's four roots, observed: `touches` records what an armed transaction touched.

    Keeping the subscriptions on the instance matters: pycrdt drops an observer
    whose Subscription object is garbage-collected.
    """

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.lines: Map = doc.get("lines", type=Map)
        self.meta: Map = doc.get("meta", type=Map)
        self.server: Map = doc.get("server", type=Map)
        self.chat: Array = doc.get(chat.ROOT, type=Array)
        self.touches = Touches()
        # The raw (yrs) subscriptions: pycrdt's own wrapper converts every event's values
        # into Python objects first, which would charge each server write ~30 µs here.
        touches = self.touches
        self._subs = [
            self.lines.integrated.observe_deep(touches.on_lines),
            self.meta.integrated.observe_deep(touches.on_meta),
            self.server.integrated.observe_deep(touches.on_server),
            self.chat.integrated.observe_deep(touches.on_chat),
        ]


def check_client_update(roots: Roots, update: bytes, types: dict[tuple[int, int], int],
                        state_vector: dict[int, int], catalog: Catalog, limits: Limits,
                        author: Author | None = None) -> Verdict:
    """Applies a client update to the observed doc and judges it.

    `types`: every shared type of the doc by item id; `state_vector`: the doc's, as its owner
    keeps it. Neither is changed here: Accepted carries what the owner takes on. `author`: the
    sender (its token), which chat messages must name; None: it may append none.
    On Rejected the doc may hold part of the update: the caller must rebuild it.
    """
    try:
        shape = read_shape(update)
    except MalformedUpdate as exc:
        return Rejected("malformed", f"malformed update: {exc}")
    parent = keyless_in_map(shape, types, MAP_ROOTS)
    if parent == "server":
        return Rejected("server_root", "clients may not write the 'server' root")
    if parent is not None:
        return Rejected("schema", "list content inside a map (lines, meta, a line and personalisation take keyed entries only)")
    if keyed_in_list(shape, types, frozenset({chat.ROOT})) is not None:
        return Rejected("schema", "keyed content inside a list (chat and lists take list entries only)")
    doc = roots.doc
    accepted = update
    if any(start < state_vector.get(client, 0) or client == doc.client_id for client, (start, _) in shape.adds.items()):
        # Items the cart has already (a stock client re-sends an edit in its sync
        # step 2 when it edits during the handshake). A no-op here, but another
        # process that has not seen the originals yet would take a forged copy as the
        # truth: only the new part is kept, stored and relayed. (Items in the server's
        # own name are always checked so: its writes do not keep `state_vector` current.)
        try:
            accepted = get_update(update, doc.get_state())
        except ValueError as exc:  # "Cannot diff updates": pycrdt cannot read it either
            return Rejected("malformed", f"malformed update: {exc}")
    touches = roots.touches
    touches.reset()
    touches.armed = True
    try:
        after = read_state_vector(raw.apply_update(doc, update))
    except Exception as exc:  # yrs refuses some malformed input itself
        return Rejected("malformed", f"malformed update: {exc}")
    finally:
        touches.armed = False
    reason = missing_dependencies(shape, after)
    if reason is not None:
        return Rejected("missing", reason)
    wants: dict[str, Want | None] = {}
    said: list[dict[str, Any]] = []
    rejected = judge(roots, shape, wants, catalog, limits, author, said)
    if rejected is not None:
        return rejected
    return Accepted(accepted, touches.touched_lines, touches.added_lines, touches.removed_lines, wants,
                    touches.touched_meta, shape, after, tuple(said))


def judge(roots: Roots, shape: UpdateShape | None, wants: dict[str, Want | None], catalog: Catalog,
          limits: Limits, author: Author | None = None, said: list[dict[str, Any]] | None = None) -> Rejected | None:
    """Checks what the last client transaction touched (`roots.touches`); returns the broken rule,
    or None after filling `wants` with what each touched line asks of stock (and `said` with the
    chat messages it appended)."""
    touches = roots.touches
    if touches.touched_server:
        return Rejected("server_root", "clients may not write the 'server' root")
    unknown = (shape.roots if shape is not None else set(roots.doc.keys())) - ROOTS
    if unknown:
        return Rejected("schema", f"unknown root {sorted(unknown)[0]!r} (allowed: lines, meta, chat)")
    with raw.transaction(roots.doc) as txn:
        broken, messages = chat.check_appended(touches.chat, txn, author, limits)
        if broken is not None:
            return Rejected(*broken)
        if said is not None:
            said.extend(messages)
        lines = roots.lines.integrated
        if touches.lines_added and lines.len(txn) > limits.max_lines:
            return Rejected("schema", f"too many lines (max {limits.max_lines})")
        for line_id in touches.touched_lines:
            if not lines.has(txn, line_id):  # deleted (a key set to null is still there)
                wants[line_id] = None
                continue
            line = lines.get(txn, line_id)
            if not isinstance(line, raw.RawMap):
                return Rejected("schema", f"line {line_id!r} must be a map")
            values = raw.fields(line, txn)
            reason = check_line_fields(line_id, values, catalog, limits,
                                       lambda: roots.lines[line_id]["personalisation"])
            if reason:
                sku = values.get("sku")
                if isinstance(sku, str) and catalog(sku) is None:
                    return Rejected("unknown_sku", reason, sku)
                return Rejected("schema", reason)
            wants[line_id] = (values["sku"], int(values["qty"]))
        meta = roots.meta
        for key in touches.touched_meta:
            if key in meta:
                reason = check_meta(key, meta[key], limits)
                if reason:
                    return Rejected("schema", reason)
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


__all__ = [
    "CLIENT_ROOTS", "Accepted", "Rejected", "Roots", "Touches", "Verdict", "Want", "check_client_update",
    "check_line", "check_meta", "judge",
]
