"""A cart's Yjs document: checked client updates, trusted writes, rollback, and plain-dict reads.

What goes into the `server` root is decided in `server_root` (its only writer), through `write`
and `write_plain` here."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Callable, NoReturn

from pycrdt import Array, Doc, Map, Text, merge_updates

from . import chat as chat_rules, raw
from .chat import Author
from .schema import Catalog, Limits
from .updates import MalformedUpdate, read_shape, read_state_vector
from .validate import Accepted, Rejected, Roots, Verdict, check_client_update

class Origin(StrEnum):
    """Who made a trusted write (the transaction's origin): the server's own decision, or a change an
    HTTP caller asked for (a line edit, a chat message) that the server checked and wrote for it."""
    SERVER = "server"
    HTTP = "http"


class WriteFailed(Exception):
    """pycrdt refused a write (it panicked); the document was rebuilt as it was before it."""


@dataclass
class ServerView:
    """Plain copies of what the per-edit path reads under `server` (plus the line ids), and the
    maps it writes: settling a hold then costs no reads of the doc, only the writes that change something.
    The cart keeps it true across client updates and drops it on any other write; `server_root`
    updates it after the writes it makes through `write_plain(keep_view=True)`."""

    status: str
    holds: dict[str, dict[str, Any]]
    pricing: dict[str, Any]
    offers: dict[str, Any]
    codes: list[str]
    line_ids: set[str]
    holds_map: Map
    pricing_map: Map
    pricing_lines: Map
    conflicts: list[dict[str, Any]] = field(default_factory=list)  # `server.conflicts`


class LastUpdate:
    """The update of the doc's last committed transaction, as its observer records it.

    The observer lives inside the doc (see `raw.observe`): bound to this, which holds no doc,
    it keeps no CartDoc alive.
    """

    __slots__ = ("update",)

    def __init__(self) -> None:
        self.update = b""

    def on_txn(self, event: Any) -> None:
        self.update = event.update


class CartDoc:
    """One cart document plus what is needed to undo a rejected client update.

    pycrdt cannot revert an applied update, so the cart keeps its last compacted
    state and the accepted updates since; a rejection rebuilds the doc from them.
    """

    def __init__(self, snapshot: bytes = b"", updates: list[bytes] | tuple[bytes, ...] = ()) -> None:
        self._base = merge_updates(snapshot, *updates) if updates and snapshot else (
            merge_updates(*updates) if updates else snapshot
        )
        self._history: list[bytes] = []
        self._types: dict[tuple[int, int], int] = {}  # every shared type in the doc, by item id
        self._state_vector: dict[int, int] = {}  # the doc's, kept current here (read afresh by `_build`)
        if self._base:
            self._learn(self._base)
        self._build()

    def _learn(self, update: bytes) -> int:
        """Remembers the shared types and clocks an update brings; returns its worst-case size growth."""
        try:
            shape = read_shape(update)
        except MalformedUpdate:
            return 4 * len(update)
        self._types.update(shape.types)
        state_vector = self._state_vector
        for client, (_start, end) in shape.adds.items():
            if end > state_vector.get(client, 0):
                state_vector[client] = end
        return shape.max_growth(len(update))

    def _build(self) -> None:
        self.doc: Doc = Doc()
        if self._base:
            self.doc.apply_update(self._base)
        for update in self._history:
            self.doc.apply_update(update)
        self._roots = Roots(self.doc)
        self._state_vector = read_state_vector(self.doc.get_state())
        self._size = len(self._base) + sum(map(len, self._history))
        self._last = LastUpdate()
        self._txn_sub = raw.observe(self.doc, self._last.on_txn)
        self._view: ServerView | None = None  # read on first use, dropped by any write it does not follow

    @property
    def lines(self) -> Map:
        return self._roots.lines

    @property
    def meta(self) -> Map:
        return self._roots.meta

    @property
    def chat(self) -> Array:
        """The conversation: append only (`crdt.chat`)."""
        return self._roots.chat

    def messages(self) -> list[dict[str, Any]]:
        """The conversation as plain dicts, read in one transaction."""
        with self.doc.transaction():
            return chat_rules.messages(self.chat)

    @property
    def server(self) -> Map:
        """The server root: read it anywhere, write it only from `server_root`."""
        return self._roots.server

    # -- writes -------------------------------------------------------------

    def apply_client_update(self, update: bytes, catalog: Catalog, limits: Limits,
                            author: Author | None = None) -> Verdict:
        """Applies a client update if every schema rule holds (Accepted says what it touched and
        wants); otherwise leaves the doc as it was (Rejected says why). `author`: the sender, whom
        its chat messages must name."""
        verdict = check_client_update(self._roots, update, self._types, self._state_vector, catalog, limits,
                                      author)
        if isinstance(verdict, Accepted):
            too_large = self._check_size(limits, verdict.shape.max_growth(len(update)))
            if too_large is None:
                self._types.update(verdict.shape.types)
                self._state_vector = verdict.state_vector
                self._history.append(verdict.update)
                if self._view is not None:
                    self._follow_client(self._view, verdict)
                return verdict
            verdict = too_large
        self._build()
        return verdict

    def _follow_client(self, view: ServerView, accepted: Accepted) -> None:
        """Keeps the view true after a client update (which never touches `server`)."""
        if "discountCodes" in accepted.meta:  # discount codes are priced (details are not)
            self._view = None
            return
        for line_id, want in accepted.wants.items():  # judged: None for a removed line
            if want is None:
                view.line_ids.discard(line_id)
            else:
                view.line_ids.add(line_id)

    def _check_size(self, limits: Limits, added: int) -> Rejected | None:
        # `_size` bounds the encoded size from above (see UpdateShape.max_growth), so
        # the exact (costlier) encoding is needed only once the bound passes the limit.
        self._size += added
        if self._size <= limits.max_doc_bytes:
            return None
        self._size = len(self.doc.get_update())
        if self._size > limits.max_doc_bytes:
            return Rejected("too_large", f"document too large (max {limits.max_doc_bytes} bytes)")
        return None

    def apply_trusted(self, update: bytes) -> tuple[set[str], bool]:
        """Applies an update another process already checked and stored.

        Returns the lines it touched and whether it touched `server`, so the
        caller can follow up (holds, pricing).
        """
        touches = self._roots.touches
        touches.reset()
        touches.armed = True
        try:
            self.doc.apply_update(update)
        finally:
            touches.armed = False
        self._history.append(update)
        self._size += self._learn(update)
        self._view = None
        return set(touches.touched_lines), touches.touched_server

    def write(self, change: Callable[["CartDoc"], None], origin: Origin = Origin.SERVER) -> bytes:
        """Runs a trusted change (server or HTTP edit) in one transaction; returns its update.

        A change that raises, or makes pycrdt panic (raised as WriteFailed), leaves the doc as it
        was: pycrdt commits what ran before the failure, so the doc is rebuilt without it.
        """
        self._view = None
        self._last.update = b""
        try:
            with self.doc.transaction(origin=origin):
                change(self)
        except BaseException as exc:
            self._undo(exc)
        update = self._last.update
        if update:
            self._history.append(update)
            self._size += self._learn(update)
        return update

    def _undo(self, exc: BaseException) -> NoReturn:
        """Drops what a failed write committed (rebuilds from the kept updates) and raises."""
        self._build()
        if raw.is_panic(exc):
            raise WriteFailed("the cart document cannot hold a value this write gives it") from exc
        raise exc

    def write_plain(self, change: Callable[[Any], None], writes: int, keep_view: bool = False) -> bytes:
        """A trusted write of plain values only (no new shared types) through the compiled layer, in
        one transaction; `change` gets the compiled transaction (see `raw`). `writes`: how many keys
        it sets or removes (for the size bound). `keep_view`: its writer updates the server view
        itself. A change that fails leaves the doc as it was, as `write` does."""
        self._last.update = b""
        if not keep_view:
            self._view = None
        try:
            with raw.transaction(self.doc, Origin.SERVER) as txn:
                change(txn)
        except BaseException as exc:
            self._view = None
            self._undo(exc)
        update = self._last.update
        if update:
            # Nothing for `_learn`: the bound of UpdateShape.max_growth with one struct and one
            # replaced item per key.
            self._history.append(update)
            self._size += len(update) + 96 * writes + 24
        return update

    def server_view(self) -> ServerView | None:
        """The plain copy of `server` (read now if need be); None while the cart has no
        `server.holds` and `server.pricing.lines` maps (never initialised)."""
        return self._view or self._read_view()

    def _read_view(self) -> ServerView | None:
        with self.doc.transaction():
            server = self.server
            holds, pricing = server.get("holds"), server.get("pricing")
            lines = pricing.get("lines") if isinstance(pricing, Map) else None
            if not (isinstance(holds, Map) and isinstance(lines, Map)):
                return None
            self._view = ServerView(
                status=str(server.get("status") or "open"), holds=plain(holds), pricing=plain(pricing),
                offers=plain(server.get("offers") or {}),
                codes=[c for c in plain(self.meta.get("discountCodes") or []) if isinstance(c, str)],
                line_ids=set(self.lines.keys()), holds_map=holds, pricing_map=pricing, pricing_lines=lines,
                conflicts=plain(server.get("conflicts") or []))
        return self._view

    def sku_of(self, line_id: str) -> Any:
        line = self.lines.get(line_id)
        return line.get("sku") if isinstance(line, Map) else None

    def write_checked(self, change: Callable[["CartDoc"], None], check: Callable[["CartDoc"], str | None],
                      origin: Origin = Origin.SERVER) -> bytes:
        """A write that must leave the doc valid: if `check` names a broken rule, or the change
        fails (pycrdt refusing a value included), the write is undone (the doc rebuilt without
        it) and ValueError carries the reason."""
        kept = len(self._history)
        try:
            update = self.write(change, origin)  # a change that fails undoes itself
            with self.doc.transaction():
                reason = check(self)
        except WriteFailed as exc:
            raise ValueError(str(exc)) from None
        except BaseException:
            self._drop_since(kept)
            raise
        if reason:
            self._drop_since(kept)
            raise ValueError(reason)
        return update

    def _drop_since(self, kept: int) -> None:
        """Forgets the updates after the first `kept` and rebuilds the doc without them."""
        del self._history[kept:]
        self._build()

    def compact(self) -> bytes:
        """Folds the accepted updates into one snapshot, which is returned."""
        self._base = self.doc.get_update()
        self._history.clear()
        self._size = len(self._base)
        return self._base

    @property
    def status(self) -> str:
        if self._view is not None:
            return self._view.status
        return str(self.server.get("status") or "open")

    @property
    def merged_into(self) -> str | None:
        value = self.server.get("mergedInto")
        return str(value) if value else None

    def wanted(self, line_ids: set[str]) -> dict[str, tuple[str, int] | None]:
        """What each line asks of stock: (sku, qty), or None for a line that is gone."""
        with self.doc.transaction():
            out: dict[str, tuple[str, int] | None] = {}
            for line_id in line_ids:
                line = self.lines.get(line_id)
                out[line_id] = (str(line.get("sku")), int(line.get("qty"))) if isinstance(line, Map) else None
        return out

    def lines_without_hold(self) -> set[str]:
        with self.doc.transaction():
            holds = self.server.get("holds")
            known = set(holds.keys()) if isinstance(holds, Map) else set()
            return set(self.lines.keys()) - known

    @property
    def pending_updates(self) -> int:
        return len(self._history)

    # -- reads --------------------------------------------------------------

    def state(self) -> bytes:
        return self.doc.get_state()

    def diff(self, state: bytes | None = None) -> bytes:
        return self.doc.get_update(state)

    def to_dict(self) -> dict[str, Any]:
        """The whole cart as plain JSON-ready data, read in one transaction."""
        with self.doc.transaction():
            lines = {line_id: plain(line) for line_id, line in self.lines.items()}
            meta = plain(self.meta)
            server = plain(self.server)
            messages = chat_rules.messages(self.chat)
        return {
            "lines": lines,
            "meta": {"note": meta.get("note", ""), "discountCodes": meta.get("discountCodes", []),
                     **({"details": meta["details"]} if "details" in meta else {})},
            "holds": server.get("holds", {}),
            "pricing": server.get("pricing"),
            "checkout": server.get("checkout"),
            "status": server.get("status", "open"),
            "mergedInto": server.get("mergedInto"),
            "conflicts": server.get("conflicts") or [],
            "chat": messages,
        }


def plain(value: Any) -> Any:
    """Converts a Yjs value to plain data; integer-valued floats read back as ints."""
    if isinstance(value, Map):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, Array):
        return [plain(v) for v in value]
    if isinstance(value, Text):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def new_line(sku: str, qty: int, added_by: str, channel: str, added_at: int,
             personalisation: dict[str, str | list[str]] | None = None) -> Map:
    """A line as the schema wants it, ready to be set under `lines[lineId]`."""
    fields: dict[str, Any] = {
        "sku": sku, "qty": qty, "addedBy": added_by, "channel": channel, "addedAt": added_at,
    }
    if personalisation:
        fields["personalisation"] = Map({
            name: Text(v) if isinstance(v, str) else Array(list(v))
            for name, v in personalisation.items()
        })
    return Map(fields)


def validate(before: Doc, update: bytes, catalog: Catalog, limits: Limits = Limits()) -> Verdict:
    """Would `update` be accepted on a cart whose state is `before`? Leaves `before` untouched.

    Convenience form for tests and tools; rooms keep a CartDoc, which checks in place.
    """
    return CartDoc(before.get_update()).apply_client_update(update, catalog, limits)
