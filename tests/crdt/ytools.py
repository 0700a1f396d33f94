"""Shared helpers for the crdt tests: update capture, a small catalog, and a Yjs v1 update writer.

The writer crafts updates that no well-behaved Yjs client would send (items under
`server`, list content in a map root, deleted content, GC ranges, delete sets for
unseen clocks), which is what an attacker speaking the wire protocol can do.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Callable

from hypothesis import strategies as st
from pycrdt import Doc, Map

from livecart.crdt.cart import CartDoc
from livecart.crdt.schema import FieldSpec, Limits, Product

# -- catalog ------------------------------------------------------------------

PRODUCTS = {
    "mug": Product("mug", "Mug", price=1200, max_qty=5),
    "tee": Product("tee", "T-shirt", price=2500, max_qty=10),
    "pen": Product("pen", "Pen", price=300),  # catalog default max_qty (99)
    "ring": Product(
        "ring", "Engraved ring", price=9900, max_qty=3,
        personalisation={
            "engraving": FieldSpec("text", max_length=12),
            "initials": FieldSpec("list", max_length=3, max_items=4),
        },
    ),
}
SKUS = sorted(PRODUCTS)
LIMITS = Limits(max_lines=8, max_doc_bytes=64 * 1024)


def catalog(sku: str) -> Product | None:
    return PRODUCTS.get(sku)


def mutate(update: bytes, data: Any, max_edits: int) -> bytes:
    """1..max_edits random byte flips, deletions and insertions, drawn from hypothesis `data`."""
    return mutate_with(update, lambda lo, hi: data.draw(st.integers(lo, hi)), max_edits)


def mutate_with(update: bytes, integer: Callable[[int, int], int], max_edits: int) -> bytes:
    """`mutate` with numbers from `integer(lo, hi)` (e.g. a seeded `random.Random().randint`)."""
    u = bytearray(update)
    for _ in range(integer(1, max_edits)):
        if not u:
            break
        i = integer(0, len(u) - 1)
        how = ("flip", "del", "ins")[integer(0, 2)]
        if how == "flip":
            u[i] = integer(0, 255)
        elif how == "del":
            del u[i]
        else:
            u.insert(i, integer(0, 255))
    return bytes(u)


# -- capturing per-transaction updates ----------------------------------------


class Client:
    """A pycrdt doc standing for one Yjs client; `updates` gets one entry per local transaction."""

    def __init__(self, client_id: int | None = None) -> None:
        self.doc = Doc(client_id=client_id) if client_id is not None else Doc()
        self.lines = self.doc.get("lines", type=Map)
        self.meta = self.doc.get("meta", type=Map)
        self.server = self.doc.get("server", type=Map)
        self.updates: list[bytes] = []
        self._remote = False
        # The Subscription must stay referenced, or pycrdt drops the observer.
        self._sub = self.doc.observe(self._on_txn)

    def _on_txn(self, event: Any) -> None:
        if not self._remote:
            self.updates.append(event.update)

    def edit(self, change) -> bytes:
        """Runs `change(self)` in one transaction and returns exactly the update it produced."""
        before = len(self.updates)
        with self.doc.transaction():
            change(self)
        new = self.updates[before:]
        assert len(new) <= 1
        return new[0] if new else b""

    def receive(self, update: bytes) -> None:
        self._remote = True
        try:
            self.doc.apply_update(update)
        finally:
            self._remote = False

    def sync_from(self, cart: CartDoc) -> None:
        self.receive(cart.diff(self.doc.get_state()))

    def plain(self) -> dict[str, Any]:
        from livecart.crdt.cart import plain
        with self.doc.transaction():
            return {"lines": plain(self.lines), "meta": plain(self.meta), "server": plain(self.server)}


def capture(doc: Doc) -> tuple[list[bytes], Any]:
    """Returns a list that receives each transaction's update, and the Subscription to keep alive."""
    updates: list[bytes] = []
    sub = doc.observe(lambda e: updates.append(e.update))
    return updates, sub


def cart_plain(cart: CartDoc) -> dict[str, Any]:
    from livecart.crdt.cart import plain
    with cart.doc.transaction():
        return {"lines": plain(cart.lines), "meta": plain(cart.meta), "server": plain(cart.server)}


def line_fields(sku: str = "mug", qty: Any = 1, **extra: Any) -> dict[str, Any]:
    fields = {"sku": sku, "qty": qty, "addedBy": "cust-1", "channel": "web", "addedAt": 1_700_000_000_000}
    fields.update(extra)
    return fields


def snapshot(cart: CartDoc) -> tuple[dict[str, Any], bytes, bytes]:
    """What must not change when an update is rejected."""
    return cart.to_dict(), cart.state(), cart.diff()


def state_equal(cart: CartDoc, before: tuple[dict[str, Any], bytes, bytes]) -> None:
    to_dict, state, full = before
    assert cart.to_dict() == to_dict
    assert cart.state() == state
    # The whole encoded content, compared by what a fresh replica reads back.
    assert _decode_all(cart.diff()) == _decode_all(full)


def _decode_all(update: bytes) -> tuple[Any, bytes]:
    d = Doc()
    d.apply_update(update)
    from livecart.crdt.cart import plain
    with d.transaction():
        data = {k: plain(d.get(k, type=Map)) for k in ("lines", "meta", "server")}
    return data, d.get_state()


# -- a Yjs v1 update writer ---------------------------------------------------


def varuint(n: int) -> bytes:
    assert n >= 0
    out = bytearray()
    while n > 0x7F:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


def varint(n: int) -> bytes:
    neg = n < 0
    n = abs(n)
    first = (n & 0x3F) | (0x40 if neg else 0) | (0x80 if n > 0x3F else 0)
    out = bytearray([first])
    n >>= 6
    while n:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
    return bytes(out)


def varstr(s: str) -> bytes:
    b = s.encode("utf-8")
    return varuint(len(b)) + b


def any_value(v: Any) -> bytes:
    if v is None:
        return bytes([126])
    if v is True:
        return bytes([120])
    if v is False:
        return bytes([121])
    if isinstance(v, int) and -(2**31) <= v < 2**31:
        return bytes([125]) + varint(v)
    if isinstance(v, (int, float)):
        return bytes([123]) + struct.pack(">d", float(v))
    if isinstance(v, str):
        return bytes([119]) + varstr(v)
    if isinstance(v, list):
        return bytes([117]) + varuint(len(v)) + b"".join(any_value(x) for x in v)
    if isinstance(v, dict):
        return bytes([118]) + varuint(len(v)) + b"".join(varstr(k) + any_value(x) for k, x in v.items())
    raise TypeError(v)


ID = tuple[int, int]

TYPE_ARRAY, TYPE_MAP, TYPE_TEXT = 0, 1, 2


@dataclass
class Item:
    """One struct: content is ("any", [values]) | ("string", s) | ("type", ref) | ("deleted", n) | ("gc", n)."""

    content: tuple[str, Any]
    origin: ID | None = None
    right_origin: ID | None = None
    parent: str | ID | None = None  # root name or the ID of a type item; only when no origins
    parent_sub: str | None = None

    def encode(self) -> bytes:
        kind, value = self.content
        if kind == "gc":
            return bytes([0]) + varuint(value)
        ref = {"deleted": 1, "string": 4, "type": 7, "any": 8}[kind]
        info = ref
        if self.origin is not None:
            info |= 0x80
        if self.right_origin is not None:
            info |= 0x40
        if self.parent_sub is not None:
            info |= 0x20
        out = bytearray([info])
        if self.origin is not None:
            out += varuint(self.origin[0]) + varuint(self.origin[1])
        if self.right_origin is not None:
            out += varuint(self.right_origin[0]) + varuint(self.right_origin[1])
        if self.origin is None and self.right_origin is None:
            if isinstance(self.parent, str):
                out += varuint(1) + varstr(self.parent)
            else:
                assert self.parent is not None, "an item without origins needs a parent"
                out += varuint(0) + varuint(self.parent[0]) + varuint(self.parent[1])
            if self.parent_sub is not None:
                out += varstr(self.parent_sub)
        if kind == "deleted":
            out += varuint(value)
        elif kind == "string":
            out += varstr(value)
        elif kind == "type":
            out += varuint(value)
        else:
            out += varuint(len(value)) + b"".join(any_value(v) for v in value)
        return bytes(out)


def encode_update(
    structs: dict[int, tuple[int, list[Item]]] | None = None,
    deletes: dict[int, list[tuple[int, int]]] | None = None,
) -> bytes:
    """structs: client -> (first clock, items); deletes: client -> [(clock, len)]."""
    out = bytearray()
    structs = structs or {}
    out += varuint(len(structs))
    for client, (clock, items) in structs.items():
        out += varuint(len(items)) + varuint(client) + varuint(clock)
        for item in items:
            out += item.encode()
    deletes = deletes or {}
    out += varuint(len(deletes))
    for client, ranges in deletes.items():
        out += varuint(client) + varuint(len(ranges))
        for clock, length in ranges:
            out += varuint(clock) + varuint(length)
    return bytes(out)
