"""Issue 16, defect 3: a write that fails, pycrdt panicking included, leaves the cart exactly as it was;
numbers JavaScript cannot hold exactly never get in from a client.

pycrdt commits what a transaction ran before an exception, and panics (pyo3's PanicException, a
BaseException) at an int beyond 64 bits: a half-written line without qty stayed in the cart.
"""
from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Map

from livecart.crdt import server_root
from livecart.crdt.cart import CartDoc, WriteFailed, new_line
from livecart.crdt.schema import Limits, Product
from livecart.crdt.validate import check_line

from .ytools import Client, catalog, line_fields, snapshot, state_equal

LIMITS = Limits(max_lines=100)
JS_SAFE = 2**53 - 1  # Number.MAX_SAFE_INTEGER


def a_cart() -> CartDoc:
    cart = CartDoc()
    server_root.init(cart)
    cart.write(lambda c: c.lines.__setitem__("L1", new_line("mug", 2, "alice", "web", 1)))
    server_root.settle(cart, {"L1": {"status": "held", "qty": 2, "expiresAt": 10, "sku": "mug"}}, catalog)
    return cart


def still_works(cart: CartDoc) -> None:
    """The cart takes the next write and a replica built from its updates agrees with it."""
    update = cart.write(lambda c: c.lines["L1"].__setitem__("qty", 3))
    assert update and cart.lines["L1"]["qty"] == 3
    assert CartDoc(cart.compact()).to_dict() == cart.to_dict()


def half_then(fail: Any) -> Any:
    """A change that writes a line, then fails (raises, or makes pycrdt panic)."""
    def change(cart: CartDoc) -> None:
        cart.lines["L2"] = new_line("mug", 1, "alice", "web", 2)
        cart.lines["L1"]["qty"] = 4
        fail(cart)
    return change


def panic(cart: CartDoc) -> None:
    cart.lines["L3"] = Map({"sku": "mug", "qty": 2**64})  # pycrdt: OverflowError unwrapped, a panic


def boom(cart: CartDoc) -> None:
    raise KeyError("boom")


def test_a_write_that_panics_is_undone_and_raised_as_write_failed() -> None:
    cart = a_cart()
    before = snapshot(cart)
    with pytest.raises(WriteFailed):
        cart.write(half_then(panic))
    state_equal(cart, before)
    still_works(cart)


def test_a_write_that_raises_is_undone() -> None:
    cart = a_cart()
    before = snapshot(cart)
    with pytest.raises(KeyError):
        cart.write(half_then(boom))
    state_equal(cart, before)
    still_works(cart)


@pytest.mark.parametrize("fail", [panic, boom])
def test_a_checked_write_that_fails_is_undone(fail: Any) -> None:
    cart = a_cart()
    before = snapshot(cart)
    with pytest.raises((ValueError, KeyError)):
        cart.write_checked(half_then(fail), lambda c: check_line("L2", c.lines["L2"], catalog, LIMITS))
    state_equal(cart, before)
    still_works(cart)


def test_a_qty_beyond_64_bits_leaves_no_line_without_qty() -> None:
    """The issue's case: `new_line(sku, 2**63, …)` panicked after the line's other fields were in."""
    cart = a_cart()
    before = snapshot(cart)
    with pytest.raises(ValueError):
        cart.write_checked(lambda c: c.lines.__setitem__("L9", new_line("mug", 2**63, "alice", "web", 3)),
                           lambda c: check_line("L9", c.lines["L9"], catalog, LIMITS))
    state_equal(cart, before)
    assert "L9" not in cart.lines


def test_settle_that_panics_is_undone() -> None:
    """A price whose line total is beyond 64 bits (the catalog's bounds keep it out; this is the
    last line of defence): `settle` refuses it whole and the next settle still works."""
    cart = a_cart()
    before = snapshot(cart)
    dear = {"mug": Product("mug", price=2**63 - 1, max_qty=5)}
    with pytest.raises(WriteFailed):
        server_root.settle(cart, {"L1": {"status": "held", "qty": 5, "expiresAt": 11, "sku": "mug"}}, dear.get)
    state_equal(cart, before)
    assert server_root.settle(cart, {"L1": {"status": "held", "qty": 1, "expiresAt": 12, "sku": "mug"}}, catalog)
    assert cart.to_dict()["pricing"]["total"] == catalog("mug").price  # type: ignore[union-attr]
    server_root.reprice(cart, catalog)
    assert CartDoc(cart.compact()).to_dict() == cart.to_dict()


@pytest.mark.parametrize("added_at", [JS_SAFE + 1, 2**62, 1e300, float("nan"), float("inf"), float("-inf"), -1])
def test_an_added_at_javascript_cannot_hold_is_rejected(added_at: Any) -> None:
    cart = a_cart()
    client = Client()
    client.sync_from(cart)
    before = snapshot(cart)
    update = client.edit(lambda c: c.lines.__setitem__("L5", Map(line_fields(addedAt=added_at))))
    verdict = cart.apply_client_update(update, catalog, LIMITS)
    assert not verdict.ok and "addedAt" in verdict.reason
    state_equal(cart, before)


@pytest.mark.parametrize("added_at", [0, 1_700_000_000_000, 1_700_000_000_000.25, JS_SAFE])
def test_an_added_at_in_range_is_accepted(added_at: Any) -> None:
    cart = a_cart()
    client = Client()
    client.sync_from(cart)
    update = client.edit(lambda c: c.lines.__setitem__("L5", Map(line_fields(addedAt=added_at))))
    assert cart.apply_client_update(update, catalog, LIMITS).ok
