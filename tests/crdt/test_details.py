"""`meta.details`: checked as clients type (only its keys, strings within bounds), co-edited, and what payment needs."""
from __future__ import annotations

import pytest
from pycrdt import Array, Map, Text

from livecart.crdt.cart import CartDoc, plain
from livecart.crdt.details import clean_details, missing_details

from .test_validate import _BASE, edit_accepted, edit_rejected, synced
from livecart.crdt.validate import Accepted

from .ytools import LIMITS, catalog


@pytest.fixture
def cart() -> CartDoc:
    return CartDoc(_BASE)


def with_details(c, **fields) -> None:
    c.meta["details"] = Map(fields)


def test_a_client_types_details_field_by_field(cart: CartDoc) -> None:
    edit_accepted(cart, lambda c: with_details(c, name="A"))
    edit_accepted(cart, lambda c: c.meta["details"].__setitem__("name", "Ada Lovelace"))
    edit_accepted(cart, lambda c: c.meta["details"].__setitem__("delivery", "ship"))
    edit_accepted(cart, lambda c: c.meta["details"].__setitem__("address", Map({"line1": "1 Analytical Row"})))
    edit_accepted(cart, lambda c: c.meta["details"]["address"].__setitem__("city", "London"))
    edit_accepted(cart, lambda c: c.meta["details"].__setitem__("email", ""))  # cleared while typing
    assert cart.to_dict()["meta"]["details"] == {
        "name": "Ada Lovelace", "delivery": "ship", "email": "",
        "address": {"line1": "1 Analytical Row", "city": "London"}}


def test_two_people_edit_different_fields_and_both_land(cart: CartDoc) -> None:
    edit_accepted(cart, lambda c: with_details(c, name="Ada"))
    shopper, operator = synced(cart), synced(cart)
    u1 = shopper.edit(lambda c: c.meta["details"].__setitem__("email", "ada@example.com"))
    u2 = operator.edit(lambda c: c.meta["details"].__setitem__("address", Map({"postcode": "N1 9GU"})))
    assert isinstance(cart.apply_client_update(u1, catalog, LIMITS), Accepted)
    assert isinstance(cart.apply_client_update(u2, catalog, LIMITS), Accepted)
    details = cart.to_dict()["meta"]["details"]
    assert details == {"name": "Ada", "email": "ada@example.com", "address": {"postcode": "N1 9GU"}}


@pytest.mark.parametrize("change,match", [
    (lambda c: c.meta.__setitem__("details", "Ada"), "details must be a map"),
    (lambda c: c.meta.__setitem__("details", None), "details must be a map"),
    (lambda c: with_details(c, name=42), "details.name must be a string"),
    (lambda c: with_details(c, name=Text("Ada")), "details.name must be a string"),
    (lambda c: with_details(c, name="x" * 10_000), "details.name is over 200 characters"),
    (lambda c: with_details(c, email="a" * 255), "details.email is over 254"),
    (lambda c: with_details(c, phone="1" * 33), "details.phone is over 32"),
    (lambda c: with_details(c, delivery="drone"), "delivery is ship or collect"),
    (lambda c: with_details(c, password="hunter2"), "no field 'password'"),
    (lambda c: with_details(c, address="1 Road"), "address must be a map"),
    (lambda c: with_details(c, address=Map({"line1": 1})), "address.line1 must be a string"),
    (lambda c: with_details(c, address=Map({"planet": "Mars"})), "address has no field 'planet'"),
    (lambda c: with_details(c, address=Map({"postcode": "9" * 21})), "postcode is over 20"),
    (lambda c: with_details(c, tags=Array(["a"])), "no field 'tags'"),
])
def test_malformed_details_are_rejected_whole(cart: CartDoc, change, match) -> None:
    edit_rejected(cart, change, match)
    assert "details" not in cart.to_dict()["meta"]


def test_a_bad_write_inside_existing_details_is_rejected(cart: CartDoc) -> None:
    edit_accepted(cart, lambda c: with_details(c, name="Ada", address=Map({"city": "London"})))
    edit_rejected(cart, lambda c: c.meta["details"]["address"].__setitem__("city", "x" * 101), "city is over 100")
    edit_rejected(cart, lambda c: c.meta["details"].__setitem__("admin", "yes"), "no field 'admin'")
    assert plain(cart.meta["details"]) == {"name": "Ada", "address": {"city": "London"}}


def test_what_payment_needs() -> None:
    assert missing_details({}) == ["name", "email", "delivery"]
    assert missing_details({"name": " ", "email": "not-an-email", "delivery": "ship"}) == [
        "name", "email", "address.line1", "address.city", "address.postcode", "address.country"]
    ship = {"name": "Ada", "email": "ada@example.com", "delivery": "ship",
            "address": {"line1": "1 Row", "city": "London", "postcode": "N1", "country": "GB"}}
    assert missing_details(ship) == []
    assert missing_details({**ship, "delivery": "collect"}) == ["store"]
    assert missing_details({"name": "Ada", "email": "ada@example.com", "delivery": "collect", "store": "Soho"}) == []
    assert clean_details({**ship, "store": "Soho", "phone": " 020 "}) == {
        "name": "Ada", "email": "ada@example.com", "delivery": "ship", "phone": "020",
        "address": {"line1": "1 Row", "city": "London", "postcode": "N1", "country": "GB"}}


def test_a_merge_fills_the_targets_gaps_from_the_sources_details_never_overwrites() -> None:
    from livecart.crdt.merge import apply_merge, plan_merge
    from .ytools import Client

    def cart_with(details: dict) -> CartDoc:
        c = CartDoc(_BASE)
        author = Client()
        author.sync_from(c)
        fields = {k: (Map(v) if isinstance(v, dict) else v) for k, v in details.items()}
        assert isinstance(c.apply_client_update(author.edit(lambda d: d.meta.__setitem__("details", Map(fields))),
                                                catalog, LIMITS), Accepted)
        return c
    guest = cart_with({"name": "Guest typed", "email": "ada@example.com", "address": {"city": "London", "postcode": "N1"}})
    own = cart_with({"name": "Ada Lovelace", "address": {"city": "Paris"}})
    apply_merge(own, plan_merge(guest, own, limits=LIMITS))
    assert own.to_dict()["meta"]["details"] == {
        "name": "Ada Lovelace", "email": "ada@example.com", "address": {"city": "Paris", "postcode": "N1"}}
    blank = CartDoc(_BASE)
    apply_merge(blank, plan_merge(guest, blank, limits=LIMITS))
    assert blank.to_dict()["meta"]["details"] == guest.to_dict()["meta"]["details"]
