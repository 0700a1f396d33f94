"""Property: concurrent clients editing through one CartDoc always converge.

2-4 pycrdt docs edit concurrently (add line, set qty, delete line, set note, push/delete
discount codes), the server writes now and then, and updates travel in random order:
interleaved between clients, sometimes out of order from one client (the cart must reject
those with missing dependencies and stay unchanged; the client sends them again later), and
sometimes twice. After a full sync every client equals the server.
"""
from __future__ import annotations

from collections import deque
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map

from livecart.crdt.cart import CartDoc, plain
from livecart.crdt.schema import Limits
from livecart.crdt.updates import read_state_vector
from livecart.crdt.validate import Rejected

from .ytools import PRODUCTS, SKUS, Client, cart_plain, catalog, line_fields, snapshot, state_equal

ROOMY = Limits(max_lines=200, max_discount_codes=500, max_doc_bytes=1 << 20)
DEPENDENCY = ("missing dependencies", "deletes unknown items")


class Peer:
    def __init__(self, n: int, client_id: int, cart: CartDoc) -> None:
        self.client = Client(client_id)  # fixed ids: Yjs breaks ties by client id
        self.client.sync_from(cart)
        self.name = f"c{n}"
        self.outbox: list[bytes] = []
        self.inbox: deque[bytes] = deque()
        self.counter = 0


def local_edit(data: st.DataObject, peer: Peer) -> None:
    c = peer.client
    lines = sorted(c.lines.keys())
    codes = c.meta.get("discountCodes")
    kind = data.draw(st.sampled_from(["add", "qty", "delete", "note", "push", "drop"]))
    if kind in ("qty", "delete") and not lines:
        kind = "add"
    if kind == "drop" and not (isinstance(codes, Array) and len(codes)):
        kind = "push"

    def change(c: Client) -> None:
        if kind == "add":
            sku = data.draw(st.sampled_from(SKUS), label="sku")
            qty = data.draw(st.integers(1, PRODUCTS[sku].max_qty), label="qty")
            peer.counter += 1
            c.lines[f"{peer.name}-{peer.counter}"] = Map(line_fields(sku, qty, addedBy=peer.name))
        elif kind == "qty":
            line_id = data.draw(st.sampled_from(lines), label="line")
            sku = c.lines[line_id]["sku"]
            c.lines[line_id]["qty"] = data.draw(st.integers(1, PRODUCTS[sku].max_qty), label="qty")
        elif kind == "delete":
            del c.lines[data.draw(st.sampled_from(lines), label="line")]
        elif kind == "note":
            c.meta["note"] = data.draw(st.text(max_size=20), label="note")
        elif kind == "push":
            new = data.draw(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=3), label="codes")
            if isinstance(codes, Array):
                at = data.draw(st.integers(0, len(codes)), label="at")
                for i, code in enumerate(new):
                    codes.insert(at + i, code)
            else:
                c.meta["discountCodes"] = Array(new)
        else:
            del codes[data.draw(st.integers(0, len(codes) - 1), label="index")]

    update = c.edit(change)
    if update:
        peer.outbox.append(update)


def deliver(cart: CartDoc, peers: list[Peer], peer: Peer, index: int, accepted: list[bytes]) -> bool:
    update = peer.outbox[index]
    before = snapshot(cart)
    verdict = cart.apply_client_update(update, catalog, ROOMY)
    if isinstance(verdict, Rejected):
        assert any(why in verdict.reason for why in DEPENDENCY), verdict.reason
        state_equal(cart, before)
        return False
    assert verdict.ok
    del peer.outbox[index]
    accepted.append(update)
    for other in peers:
        if other is not peer:
            other.inbox.append(update)
    return True


def server_write(data: st.DataObject, cart: CartDoc, peers: list[Peer]) -> None:
    status = data.draw(st.sampled_from(["open", "checking_out", "open"]), label="status")
    lines = sorted(cart.lines.keys())

    def change(c: CartDoc) -> None:
        c.server["status"] = status
        holds = c.server.get("holds")
        if holds is None:
            holds = c.server["holds"] = Map()
        if lines:
            line_id = data.draw(st.sampled_from(lines), label="hold")
            holds[line_id] = Map({"status": "held", "qty": 1})

    update = cart.write(change)
    for p in peers:
        p.inbox.append(update)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_concurrent_edits_converge(data):
    cart = CartDoc()
    cart.write(lambda c: c.server.__setitem__("status", "open"))
    n = data.draw(st.integers(2, 4), label="clients")
    client_ids = data.draw(st.lists(st.integers(1, 2**32), min_size=n, max_size=n, unique=True), label="ids")
    peers = [Peer(i, cid, cart) for i, cid in enumerate(client_ids)]
    accepted: list[bytes] = []
    rejected_out_of_order = 0

    for _ in range(data.draw(st.integers(5, 60), label="steps")):
        step = data.draw(st.sampled_from(["edit", "edit", "deliver", "deliver", "ooo", "receive", "receive",
                                          "server", "again", "resync"]), label="step")
        peer = data.draw(st.sampled_from(peers), label="peer")
        if step == "edit":
            local_edit(data, peer)
        elif step in ("deliver", "ooo") and peer.outbox:
            index = 0 if step == "deliver" else data.draw(st.integers(0, len(peer.outbox) - 1), label="index")
            if not deliver(cart, peers, peer, index, accepted):
                assert index > 0, "an in-order update was rejected"
                rejected_out_of_order += 1
        elif step == "receive" and peer.inbox:
            peer.client.receive(peer.inbox.popleft())
        elif step == "server":
            server_write(data, cart, peers)
        elif step == "again" and accepted:
            # a duplicate delivery is accepted and changes nothing
            before = snapshot(cart)
            assert cart.apply_client_update(data.draw(st.sampled_from(accepted)), catalog, ROOMY).ok
            state_equal(cart, before)
        elif step == "resync":
            peer.client.sync_from(cart)

    event("out-of-order deliveries rejected", "some" if rejected_out_of_order else "none")
    event("lines at the end of the concurrent phase", min(len(cart.lines), 5))
    # flush every outbox in order: all of it must be accepted now
    for peer in peers:
        while peer.outbox:
            assert deliver(cart, peers, peer, 0, accepted), "in-order delivery after the fact was rejected"
    # the server lacks nothing a client has ...
    for peer in peers:
        leftover = peer.client.doc.get_update(cart.state())
        before = snapshot(cart)
        assert cart.apply_client_update(leftover, catalog, ROOMY).ok
        state_equal(cart, before)
    # ... and after a full sync every client equals the server
    server_view = cart_plain(cart)
    server_sv = read_state_vector(cart.state())
    server_full = _reread(cart.diff())
    for peer in peers:
        while peer.inbox:
            peer.client.receive(peer.inbox.popleft())
        peer.client.sync_from(cart)
        assert peer.client.plain() == server_view
        assert read_state_vector(peer.client.doc.get_state()) == server_sv
        assert _reread(peer.client.doc.get_update()) == server_full
    # the server's own writes made it through
    assert server_view["server"]["status"] in ("open", "checking_out")
    # a reload from the compacted snapshot is the same cart
    assert cart_plain(CartDoc(cart.compact())) == server_view


def _reread(update: bytes) -> tuple[dict[str, Any], dict[int, int]]:
    d = Doc()
    d.apply_update(update)
    with d.transaction():
        data = {k: plain(d.get(k, type=Map)) for k in ("lines", "meta", "server")}
    return data, read_state_vector(d.get_state())
