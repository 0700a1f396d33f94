"""Issue 16, defect 2: a CartDoc, and every doc a rejection replaces, is freed once nothing uses it.

Its observers live inside the yrs doc, out of sight of Python's GC: one that held the
CartDoc (a bound method, pycrdt's `Doc.observe` partial) kept the cart and its doc alive for good.
"""
from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
from pycrdt import Doc, Map

from livecart.crdt import server_root
from livecart.crdt.cart import CartDoc, new_line
from livecart.crdt.schema import Limits
from livecart.crdt.validate import Rejected, check_line

from .ytools import catalog

LIMITS = Limits(max_lines=100)


def snapshot(lines: int) -> bytes:
    cart = CartDoc()
    server_root.init(cart)
    for i in range(lines):
        cart.write(lambda c, i=i: c.lines.__setitem__(f"l{i}", new_line("mug", 1, "alice", "web", i)))
    return cart.diff()


def client_line(line_id: str, sku: str, qty: int) -> bytes:
    doc = Doc()
    doc.get("lines", type=Map)[line_id] = new_line(sku, qty, "bob", "web", 1)
    return doc.get_update()


def collected(ref: weakref.ref[Any]) -> bool:
    gc.collect()
    return ref() is None


def used(cart: CartDoc) -> None:
    """What a room does with its cart: accepted and rejected updates, server writes, reads."""
    assert cart.apply_client_update(client_line("l-a", "mug", 2), catalog, LIMITS).ok
    assert isinstance(cart.apply_client_update(client_line("l-b", "mug", 99), catalog, LIMITS), Rejected)
    server_root.settle(cart, {"l0": {"status": "held", "qty": 1, "expiresAt": 1, "sku": "mug"}}, catalog)
    server_root.reprice(cart, catalog)
    server_root.checkout_step(cart, "details", 2)
    cart.apply_trusted(client_line("l-c", "tee", 1))
    cart.to_dict()


@pytest.mark.parametrize("lines", [0, 20])
def test_a_dropped_cart_and_its_doc_are_collected(lines: int) -> None:
    cart = CartDoc(snapshot(lines))
    used(cart)
    cart_ref, doc_ref = weakref.ref(cart), weakref.ref(cart.doc)
    del cart
    assert collected(cart_ref), "the CartDoc outlived its last reference"
    assert collected(doc_ref), "its Doc outlived the CartDoc"


def test_the_doc_a_rejected_update_replaces_is_collected() -> None:
    cart = CartDoc(snapshot(5))
    before = weakref.ref(cart.doc)
    verdict = cart.apply_client_update(client_line("l-a", "mug", 99), catalog, LIMITS)
    assert isinstance(verdict, Rejected)
    assert collected(before), "the doc a rejection rebuilt away is still alive"
    assert cart.apply_client_update(client_line("l-b", "mug", 2), catalog, LIMITS).ok  # the rebuilt one observes


def test_the_doc_a_refused_write_replaces_is_collected() -> None:
    cart = CartDoc(snapshot(2))
    before = weakref.ref(cart.doc)
    with pytest.raises(ValueError):
        cart.write_checked(lambda c: c.lines["l0"].__setitem__("qty", 0),
                           lambda c: check_line("l0", c.lines["l0"], catalog, LIMITS))
    assert collected(before)
    assert cart.lines["l0"]["qty"] == 1
    assert cart.write(lambda c: c.lines["l0"].__setitem__("qty", 3))  # its update is still recorded
