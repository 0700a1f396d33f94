"""A cart's Yjs document: checked client updates, server writes, rollback, and plain-dict reads."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NoReturn

from pycrdt import Array, Doc, Map, Text, merge_updates

from . import raw
from .pricing import DiscountLookup, price_cart
from .schema import Catalog, Limits
from .updates import MalformedUpdate, read_shape
from .validate import OK, Rejected, Verdict, Watcher, apply_checked

SERVER_ORIGIN = "server"


class WriteFailed(Exception):
    """pycrdt refused a write (it panicked); the document was rebuilt as it was before it."""


@dataclass
class ServerView:
    """Plain copies of what the per-edit path reads under `server` (plus the line ids), and the
    maps it writes: settling a hold then costs no reads of the doc, only the writes that change something."""

    status: str
    holds: dict[str, dict[str, Any]]
    pricing: dict[str, Any]
    offers: dict[str, Any]
    codes: list[str]
    line_ids: set[str]
    holds_map: Map
    pricing_map: Map
    pricing_lines: Map


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
        self.last_accepted = b""  # the new part of the last accepted client update
        self._types: dict[tuple[int, int], int] = {}
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
        watch = getattr(self, "_watch", None)  # None only while the first snapshot is read
        if watch is not None:
            for client, (_start, end) in shape.adds.items():
                if end > watch.state_vector.get(client, 0):
                    watch.state_vector[client] = end
        return shape.max_growth(len(update))

    def _build(self) -> None:
        self.doc: Doc = Doc()
        if self._base:
            self.doc.apply_update(self._base)
        for update in self._history:
            self.doc.apply_update(update)
        self._watch = Watcher(self.doc)
        self._watch.types = self._types
        self._size = len(self._base) + sum(map(len, self._history))
        self._last = LastUpdate()
        self._txn_sub = raw.observe(self.doc, self._last.on_txn)
        self._view: ServerView | None = None  # read on first use, dropped by any write it does not follow

    @property
    def lines(self) -> Map:
        return self._watch.lines

    @property
    def meta(self) -> Map:
        return self._watch.meta

    @property
    def server(self) -> Map:
        return self._watch.server

    # -- writes -------------------------------------------------------------

    def apply_client_update(self, update: bytes, catalog: Catalog, limits: Limits) -> Verdict:
        """Applies a client update if every schema rule holds; otherwise leaves the doc as it was."""
        verdict = apply_checked(self._watch, update, catalog, limits)
        if verdict is OK:
            shape = self._watch.shape
            assert shape is not None
            verdict = self._check_size(limits, shape.max_growth(len(update)))
        if verdict is OK:
            self._types.update(shape.types)
            self.last_accepted = self._watch.accepted
            self._history.append(self.last_accepted)
            self._follow_client(self._view)
        else:
            self._build()
        return verdict

    def _follow_client(self, view: ServerView | None) -> None:
        """Keeps the view true after a client update (which never touches `server`)."""
        if view is None:
            return
        if self._watch.touches.touched_meta & {"discountCodes"}:  # discount codes are priced (details are not)
            self._view = None
            return
        for line_id, want in self._watch.wants.items():  # judged: None for a removed line
            if want is None:
                view.line_ids.discard(line_id)
            else:
                view.line_ids.add(line_id)

    def _check_size(self, limits: Limits, added: int) -> Verdict:
        # `_size` bounds the encoded size from above (see UpdateShape.max_growth), so
        # the exact (costlier) encoding is needed only once the bound passes the limit.
        self._size += added
        if self._size <= limits.max_doc_bytes:
            return OK
        self._size = len(self.doc.get_update())
        if self._size > limits.max_doc_bytes:
            return Rejected(f"document too large (max {limits.max_doc_bytes} bytes)")
        return OK

    def apply_trusted(self, update: bytes) -> tuple[set[str], bool]:
        """Applies an update another process already checked and stored.

        Returns the lines it touched and whether it touched `server`, so the
        caller can follow up (holds, pricing).
        """
        touches = self._watch.touches
        self._watch.reset()
        touches.armed = True
        try:
            self.doc.apply_update(update)
        finally:
            touches.armed = False
        self._history.append(update)
        self._size += self._learn(update)
        self._view = None
        return set(touches.touched_lines), touches.touched_server

    def write(self, change: Callable[["CartDoc"], None], origin: str = SERVER_ORIGIN) -> bytes:
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

    def settle(self, decisions: dict[str, dict[str, Any] | None], catalog: Catalog,
               shop_codes: DiscountLookup = lambda code: None) -> bytes:
        """Writes hold outcomes and the pricing they lead to (what `set_holds` + `reprice` do),
        in one transaction, from the view: the server's write after every stock decision."""
        view = self._view or self._read_view()
        if view is None:  # a cart without the server maps (never initialised): the general path
            return self.write(lambda cart: (set_holds(cart, decisions), reprice(cart, catalog, shop_codes)))
        holds = dict(view.holds)
        hold_changes: dict[str, dict[str, Any] | None] = {}
        for line_id, decision in decisions.items():
            old = holds.get(line_id)
            if decision is None:
                if old is not None:
                    del holds[line_id]
                    hold_changes[line_id] = None
                continue
            entry = {**old, **decision} if old is not None else decision  # keeps the sku
            if old != entry:
                holds[line_id] = hold_changes[line_id] = entry
        priced = {k: {"sku": h.get("sku") or self._sku_of(k)} for k, h in holds.items() if k in view.line_ids}
        pricing = price_cart(priced, holds, catalog, view.pricing.get("currency") or "EUR",
                             view.offers, view.codes, shop_codes)
        old_lines: dict[str, Any] = view.pricing.get("lines", {})
        top = {k: v for k, v in pricing.items() if k != "lines" and view.pricing.get(k) != v}
        gone = [k for k in old_lines if k not in pricing["lines"]]
        lines = {k: v for k, v in pricing["lines"].items() if old_lines.get(k) != v}
        if not (hold_changes or top or gone or lines):
            return b""
        self._last.update = b""
        holds_map, pricing_map, pricing_lines = (
            view.holds_map.integrated, view.pricing_map.integrated, view.pricing_lines.integrated)
        try:
            with raw.transaction(self.doc, SERVER_ORIGIN) as txn:  # plain values only: the compiled layer
                for line_id, entry in hold_changes.items():
                    if entry is None:
                        holds_map.remove(txn, line_id)
                    else:
                        holds_map.insert(txn, line_id, entry)
                for key, value in top.items():
                    pricing_map.insert(txn, key, value)
                for line_id in gone:
                    pricing_lines.remove(txn, line_id)
                for line_id, value in lines.items():
                    pricing_lines.insert(txn, line_id, value)
        except BaseException as exc:
            self._view = None
            self._undo(exc)
        view.holds, view.pricing = holds, pricing
        update = self._last.update
        # Only plain values were set (no new shared types, nothing for `_learn`): the bound of
        # UpdateShape.max_growth with one struct and one replaced item per key.
        writes = len(hold_changes) + len(top) + len(gone) + len(lines)
        self._history.append(update)
        self._size += len(update) + 96 * writes + 24
        return update

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
                line_ids=set(self.lines.keys()), holds_map=holds, pricing_map=pricing, pricing_lines=lines)
        return self._view

    def _sku_of(self, line_id: str) -> Any:
        line = self.lines.get(line_id)
        return line.get("sku") if isinstance(line, Map) else None

    def write_checked(self, change: Callable[["CartDoc"], None], check: Callable[["CartDoc"], str | None],
                      origin: str = SERVER_ORIGIN) -> bytes:
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

    def last_touched_lines(self) -> set[str]:
        """Line ids the last accepted client update added, changed or removed."""
        return set(self._watch.touches.touched_lines)

    def last_added_removed(self) -> tuple[set[str], set[str]]:
        """Line ids the last accepted client update added, and those it removed."""
        return set(self._watch.touches.added_lines), set(self._watch.touches.removed_lines)

    def last_wants(self) -> dict[str, tuple[str, int] | None]:
        """What the lines of the last accepted client update ask of stock (see `wanted`)."""
        return dict(self._watch.wants)

    def last_touched_meta(self) -> set[str]:
        return set(self._watch.touches.touched_meta)

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
        return {
            "lines": lines,
            "meta": {"note": meta.get("note", ""), "discountCodes": meta.get("discountCodes", []),
                     **({"details": meta["details"]} if "details" in meta else {})},
            "holds": server.get("holds", {}),
            "pricing": server.get("pricing"),
            "checkout": server.get("checkout"),
            "status": server.get("status", "open"),
            "mergedInto": server.get("mergedInto"),
        }


def init_server(cart: CartDoc, currency: str = "EUR") -> None:
    """The server root of a new cart (written once, at creation, so no process races to create it)."""
    cart.server["status"] = "open"
    cart.server["holds"] = Map()
    write_pricing(cart, {"currency": currency, "lines": {}, "subtotal": 0, "discounts": [], "total": 0})
    cart.server["checkout"] = {"state": "open", "step": None, "orderId": None}


def set_holds(cart: CartDoc, decisions: dict[str, dict[str, Any] | None]) -> None:
    """Writes hold outcomes per line (None drops the entry of a removed line)."""
    holds = cart.server.get("holds")
    if not isinstance(holds, Map):
        holds = cart.server["holds"] = Map()
    for line_id, decision in decisions.items():
        if decision is None:
            if line_id in holds:
                del holds[line_id]
            continue
        old = holds.get(line_id)
        entry = {**old, **decision} if isinstance(old, dict) else decision  # keeps the sku
        if old != entry:
            holds[line_id] = entry


def compute_pricing(cart: CartDoc, catalog: Catalog, shop_codes: DiscountLookup = lambda code: None) -> dict[str, Any]:
    """`server.pricing` as it should be now, from the catalog, holds and valid discounts."""
    with cart.doc.transaction():
        holds_map = cart.server.get("holds")
        holds = plain(holds_map) if isinstance(holds_map, Map) else {}
        # Hold entries name their SKU: pricing reads them, not every line (the hot path).
        lines = {k: {"sku": h.get("sku") or cart._sku_of(k)} for k, h in holds.items() if k in cart.lines}
        currency = (cart.server.get("pricing") or {}).get("currency", "EUR")
        offers = plain(cart.server.get("offers") or {})
        typed = [c for c in plain(cart.meta.get("discountCodes") or []) if isinstance(c, str)]
    return price_cart(lines, holds, catalog, currency, offers, typed, shop_codes)


def reprice(cart: CartDoc, catalog: Catalog, shop_codes: DiscountLookup = lambda code: None) -> None:
    """Recomputes `server.pricing` (never from client data); writes only when it changed."""
    write_pricing(cart, compute_pricing(cart, catalog, shop_codes))


def write_pricing(cart: CartDoc, pricing: dict[str, Any]) -> None:
    """Writes only what changed: `pricing` is a map and its `lines` a map of line entries, so a
    qty change costs one line entry and the totals, not the whole (cart-sized) object."""
    current = cart.server.get("pricing")
    if not isinstance(current, Map):
        current = cart.server["pricing"] = Map({"lines": Map()})
    lines = current.get("lines")
    if not isinstance(lines, Map):
        lines = current["lines"] = Map()
    for key, value in pricing.items():
        if key != "lines" and plain(current.get(key)) != value:
            current[key] = value
    for line_id in [k for k in lines.keys() if k not in pricing["lines"]]:
        del lines[line_id]
    for line_id, entry in pricing["lines"].items():
        if plain(lines.get(line_id)) != entry:
            lines[line_id] = entry


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
