"""CartDoc.apply_client_update: every schema rule, rollback, missing dependencies, crafted attacks."""
from __future__ import annotations

import re
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, merge_updates

from livecart.crdt import server_root
from livecart.crdt.cart import CartDoc, new_line, validate
from livecart.crdt.schema import LINE_FIELDS, META_FIELDS, ROOTS, FieldSpec, Limits, Product
from livecart.crdt.updates import read_state_vector
from livecart.crdt.validate import Rejected

from .ytools import (
    LIMITS,
    PRODUCTS,
    SKUS,
    TYPE_MAP,
    TYPE_TEXT,
    Client,
    Item,
    cart_plain,
    catalog,
    encode_update,
    line_fields,
    mutate,
    snapshot,
    state_equal,
)

SERVER_STATE = {
    "status": "open",
    "holds": {"L0": {"status": "held", "qty": 1, "expiresAt": 1_700_000_900_000}},
    "pricing": {"currency": "EUR", "subtotal": 9900, "total": 9900},
}


def _server_setup(c: CartDoc) -> None:
    c.server["status"] = "open"
    c.server["holds"] = Map({"L0": Map({"status": "held", "qty": 1, "expiresAt": 1_700_000_900_000})})
    c.server["pricing"] = Map({"currency": "EUR", "subtotal": 9900, "total": 9900})


def _client_setup(c: Client) -> None:
    c.lines["L0"] = new_line("ring", 1, "cust-1", "web", 1_700_000_000_000,
                             {"engraving": "Hi", "initials": ["AB"]})
    c.lines["L1"] = new_line("mug", 2, "cust-1", "app", 1_700_000_000_001)
    c.meta["note"] = "leave at door"
    c.meta["discountCodes"] = Array(["WELCOME"])


def make_cart() -> CartDoc:
    """A cart with server-written fields and two client lines (one personalised)."""
    cart = CartDoc()
    assert cart.write(_server_setup)
    author = Client()
    author.sync_from(cart)
    assert cart.apply_client_update(author.edit(_client_setup), catalog, LIMITS).ok
    return cart


_BASE = make_cart().compact()


@pytest.fixture
def cart() -> CartDoc:
    return CartDoc(_BASE)


def synced(cart: CartDoc, client_id: int | None = None) -> Client:
    c = Client(client_id)
    c.sync_from(cart)
    return c


def accept(cart: CartDoc, update: bytes, limits: Limits = LIMITS, cat=catalog) -> None:
    verdict = cart.apply_client_update(update, cat, limits)
    assert verdict.ok, verdict


def reject(cart: CartDoc, update: bytes, match: str | None = None, limits: Limits = LIMITS,
           cat=catalog, follow_up: bool = True) -> Rejected:
    """Asserts a rejection that leaves the cart exactly as it was, and that the cart still works."""
    before = snapshot(cart)
    verdict = cart.apply_client_update(update, cat, limits)
    assert isinstance(verdict, Rejected), f"accepted: {update.hex()}"
    if match:
        assert re.search(match, verdict.reason), verdict.reason
    state_equal(cart, before)
    if follow_up:
        c = synced(cart)
        accept(cart, c.edit(lambda c: c.meta.__setitem__("note", "still fine")), limits, cat)
        assert cart.to_dict()["meta"]["note"] == "still fine"
    return verdict


def edit_rejected(cart: CartDoc, change: Callable[[Client], Any], match: str | None = None, **kw) -> Rejected:
    c = synced(cart)
    update = c.edit(change)
    assert update, "the change produced no update"
    return reject(cart, update, match, **kw)


def edit_accepted(cart: CartDoc, change: Callable[[Client], Any], **kw) -> bytes:
    c = synced(cart)
    update = c.edit(change)
    accept(cart, update, **kw)
    assert cart_plain(cart) == c.plain()
    return update


# -- the fixture itself is valid ----------------------------------------------


def test_base_cart(cart):
    d = cart.to_dict()
    assert d["status"] == "open"
    assert d["holds"] == SERVER_STATE["holds"]
    assert d["lines"]["L0"]["personalisation"] == {"engraving": "Hi", "initials": ["AB"]}
    assert d["meta"] == {"note": "leave at door", "discountCodes": ["WELCOME"]}


# -- server root --------------------------------------------------------------

SERVER = "may not write the 'server' root"


@pytest.mark.parametrize("change", [
    pytest.param(lambda c: c.server.__setitem__("status", "ordered"), id="set"),
    pytest.param(lambda c: c.server.__setitem__("checkout", Map({"state": "paid"})), id="set-new-map"),
    pytest.param(lambda c: c.server["holds"]["L0"].__setitem__("qty", 99), id="nested-set"),
    pytest.param(lambda c: c.server["holds"].__setitem__("L1", Map({"status": "held"})), id="nested-add"),
    pytest.param(lambda c: c.server["pricing"].__setitem__("total", 0), id="nested-price"),
    pytest.param(lambda c: c.server.__delitem__("status"), id="delete-key"),
    pytest.param(lambda c: c.server.__delitem__("holds"), id="delete-map"),
    pytest.param(lambda c: c.server["holds"].__delitem__("L0"), id="nested-delete"),
    pytest.param(lambda c: (c.lines["L1"].__setitem__("qty", 3), c.server.__setitem__("status", "ordered")),
                 id="valid-edit-plus-server"),
])
def test_server_writes_rejected(cart, change):
    edit_rejected(cart, change, SERVER)
    assert cart_plain(cart)["server"] == SERVER_STATE


def test_deleting_a_key_the_server_wrote_later(cart):
    cart.write(lambda c: c.server.__setitem__("mergedInto", "cart-2"))
    assert cart.to_dict()["mergedInto"] == "cart-2"
    edit_rejected(cart, lambda c: c.server.__delitem__("mergedInto"), SERVER)
    assert cart.to_dict()["mergedInto"] == "cart-2"


def test_crafted_server_writes_rejected(cart):
    c = 90_001
    # list content (no key) in the server root
    reject(cart, encode_update({c: (0, [Item(("any", ["x"]), parent="server")])}), SERVER)
    # a deleted item under server.status still displaces the current value
    reject(cart, encode_update({c: (0, [Item(("deleted", 1), parent="server", parent_sub="status")])}), SERVER)
    # insert and delete in one update
    reject(cart, encode_update({c: (0, [Item(("any", ["ordered"]), parent="server", parent_sub="status")])},
                               {c: [(0, 1)]}), SERVER)
    assert cart_plain(cart)["server"] == SERVER_STATE


def test_server_may_still_write_after_a_rejection(cart):
    edit_rejected(cart, lambda c: c.server.__setitem__("status", "ordered"))
    update = cart.write(lambda c: c.server.__setitem__("status", "checking_out"))
    assert update
    assert cart.to_dict()["status"] == "checking_out"
    other = Doc()
    other.apply_update(_BASE)
    other.apply_update(update)
    assert str(other.get("server", type=Map)["status"]) == "checking_out"


# -- roots, lines, meta ----------------------------------------------------------


@pytest.mark.parametrize("kind", [Map, Array, Text])
def test_unknown_root(cart, kind):
    def change(c: Client) -> None:
        root = c.doc.get("extra", type=kind)
        if kind is Map:
            root["x"] = 1
        elif kind is Array:
            root.append(1)
        else:
            root += "x"
    edit_rejected(cart, change, "unknown root 'extra'")
    assert set(cart.doc.keys()) <= ROOTS


def test_unknown_sku(cart):
    edit_rejected(cart, lambda c: c.lines.__setitem__("L2", Map(line_fields("nope"))), "unknown sku 'nope'")
    edit_rejected(cart, lambda c: c.lines["L1"].__setitem__("sku", "nope"), "unknown sku")


@pytest.mark.parametrize("qty", [0, -1, 6, 1000, 2**40, True, False, 2.5, 0.5, "3", None, [3], float("nan"),
                                 float("inf")])
def test_bad_qty_rejected(cart, qty):
    # mug has maxQty 5
    edit_rejected(cart, lambda c: c.lines.__setitem__("L2", Map(line_fields("mug", qty))), "qty")
    edit_rejected(cart, lambda c: c.lines["L1"].__setitem__("qty", qty), "qty")


@pytest.mark.parametrize("qty", [1, 5, 3.0, 5.0])
def test_good_qty_accepted(cart, qty):
    edit_accepted(cart, lambda c: c.lines["L1"].__setitem__("qty", qty))
    assert cart.to_dict()["lines"]["L1"]["qty"] == int(qty)


def test_catalog_max_qty_and_default_max(cart):
    edit_accepted(cart, lambda c: c.lines.__setitem__("L2", Map(line_fields("pen", 99))))
    edit_rejected(cart, lambda c: c.lines["L2"].__setitem__("qty", 100), "1..99")
    edit_rejected(cart, lambda c: c.lines["L0"].__setitem__("qty", 4), r"1\.\.3")  # ring: maxQty 3


def test_missing_sku_or_qty(cart):
    edit_rejected(cart, lambda c: c.lines["L1"].__delitem__("sku"), "sku must be a string")
    edit_rejected(cart, lambda c: c.lines["L1"].__delitem__("qty"), "qty")
    fields = line_fields()
    del fields["qty"]
    edit_rejected(cart, lambda c: c.lines.__setitem__("L2", Map(fields)), "qty")


@pytest.mark.parametrize("sku", [5, 1.0, True, None, ["mug"], {"sku": "mug"}])
def test_sku_not_a_string(cart, sku):
    edit_rejected(cart, lambda c: c.lines.__setitem__("L2", Map(line_fields(sku))), "sku must be a string")


@pytest.mark.parametrize("value", [
    pytest.param(lambda: "mug", id="string"),
    pytest.param(lambda: 3, id="number"),
    pytest.param(lambda: {"sku": "mug", "qty": 1}, id="plain-dict"),
    pytest.param(lambda: Array(["mug", 1]), id="array"),
    pytest.param(lambda: Text("mug"), id="text"),
])
def test_line_not_a_map(cart, value):
    edit_rejected(cart, lambda c: c.lines.__setitem__("L2", value()), "must be a map")


@pytest.mark.parametrize("field", ["price", "status", "holds", "Qty", ""])
def test_unknown_line_field(cart, field):
    edit_rejected(cart, lambda c: c.lines.__setitem__("L2", Map(line_fields(**{field: 1}))), "unknown field")
    edit_rejected(cart, lambda c: c.lines["L1"].__setitem__(field, "x"), "unknown field")


@pytest.mark.parametrize("name, value", [
    ("addedBy", ""), ("addedBy", "x" * 201), ("addedBy", 5), ("channel", ""), ("channel", ["web"]),
    ("addedAt", "yesterday"), ("addedAt", True),
])
def test_bad_line_metadata(cart, name, value):
    edit_rejected(cart, lambda c: c.lines["L1"].__setitem__(name, value), name)


def test_null_line_is_rejected(cart):
    """BUG: `lines[id] = null` is accepted.

    judge() reads the line with Map.get, which returns None both for a deleted key and for a
    key whose value is null, so the null line is taken for a deletion and never checked.
    to_dict() then holds {"L2": None}: anything that walks the lines (pricing, holds, merge,
    the HTTP API) meets a line that is not a map.
    """
    edit_rejected(cart, lambda c: c.lines.__setitem__("L2", None), "must be a map")
    edit_rejected(cart, lambda c: c.lines.__setitem__("L1", None), "must be a map")
    assert all(isinstance(line, dict) for line in cart.to_dict()["lines"].values())


def test_a_client_update_cannot_break_server_repricing(cart):
    """BUG (consequence of the null line): once `lines.X = null` is accepted, every later
    server write that reprices the cart (server_root.settle, run by rooms after each hold decision)
    raises AttributeError, so one client message stops pricing and holds for the whole cart,
    and leaves each such write half-applied (see test_failed_server_write_...)."""
    c = synced(cart)
    cart.apply_client_update(c.edit(lambda c: c.lines.__setitem__("X", None)), catalog, LIMITS)
    server_root.settle(cart, {"L1": {"status": "held", "qty": 2}}, catalog)
    assert cart.to_dict()["pricing"]["lines"]["L1"]["qty"] == 2


@pytest.mark.parametrize("field", ["note", "discountCodes"])
def test_null_meta_value_is_rejected(cart, field):
    """BUG: `meta.note = null` / `meta.discountCodes = null` are accepted (check_meta treats the
    value None as a deletion), and to_dict() then returns None where the contract promises a
    string and a list, e.g. {"note": None, "discountCodes": None}."""
    edit_rejected(cart, lambda c: c.meta.__setitem__(field, None), field, follow_up=False)
    assert cart.to_dict()["meta"] == {"note": "leave at door", "discountCodes": ["WELCOME"]}


def test_null_personalisation_is_rejected(cart):
    """BUG (same cause): `personalisation = null` passes as if the field were absent."""
    edit_rejected(cart, lambda c: c.lines["L0"].__setitem__("personalisation", None), "personalisation")


def test_line_id_too_long(cart):
    edit_rejected(cart, lambda c: c.lines.__setitem__("L" * 201, Map(line_fields())), "line id too long")


def test_max_lines(cart):
    # LIMITS.max_lines is 8 and the cart holds 2
    edit_accepted(cart, lambda c: [c.lines.__setitem__(f"N{i}", Map(line_fields())) for i in range(6)])
    assert len(cart.to_dict()["lines"]) == 8
    edit_rejected(cart, lambda c: c.lines.__setitem__("N9", Map(line_fields())), "too many lines")
    # replacing a line and editing lines at the limit are fine
    edit_accepted(cart, lambda c: c.lines.__setitem__("N0", Map(line_fields("tee", 2))))
    edit_accepted(cart, lambda c: c.lines["N1"].__setitem__("qty", 3))
    # delete one, add one in one update
    edit_accepted(cart, lambda c: (c.lines.__delitem__("N2"), c.lines.__setitem__("N9", Map(line_fields()))))


def test_too_many_lines_in_one_update(cart):
    edit_rejected(cart, lambda c: [c.lines.__setitem__(f"N{i}", Map(line_fields())) for i in range(7)],
                  "too many lines")


@pytest.mark.parametrize("field", ["coupon", "status", "total", ""])
def test_unknown_meta_field(cart, field):
    edit_rejected(cart, lambda c: c.meta.__setitem__(field, "x"), "meta: unknown field")


def test_note(cart):
    edit_accepted(cart, lambda c: c.meta.__setitem__("note", "n" * 2000))
    edit_rejected(cart, lambda c: c.meta.__setitem__("note", "n" * 2001), "note")
    edit_rejected(cart, lambda c: c.meta.__setitem__("note", 5), "note")
    edit_rejected(cart, lambda c: c.meta.__setitem__("note", Map({"a": "b"})), "note")
    edit_accepted(cart, lambda c: c.meta.__delitem__("note"))
    assert cart.to_dict()["meta"]["note"] == ""


@pytest.mark.parametrize("value", [
    pytest.param(lambda: "WELCOME", id="string"),
    pytest.param(lambda: ["WELCOME"], id="plain-list"),
    pytest.param(lambda: Map({"0": "WELCOME"}), id="map"),
    pytest.param(lambda: Text("WELCOME"), id="text"),
    pytest.param(lambda: Array(["A", 5]), id="number-entry"),
    pytest.param(lambda: Array(["A", ""]), id="empty-entry"),
    pytest.param(lambda: Array(["A", None]), id="null-entry"),
    pytest.param(lambda: Array(["A", Array(["B"])]), id="nested-array"),
    pytest.param(lambda: Array(["C" * 65]), id="too-long-code"),
    pytest.param(lambda: Array([f"C{i}" for i in range(21)]), id="too-many-codes"),
])
def test_bad_discount_codes(cart, value):
    edit_rejected(cart, lambda c: c.meta.__setitem__("discountCodes", value()), "discount")


def test_discount_code_edits(cart):
    edit_accepted(cart, lambda c: c.meta["discountCodes"].extend([f"C{i}" for i in range(19)]))
    edit_rejected(cart, lambda c: c.meta["discountCodes"].append("ONE-TOO-MANY"), "at most 20")
    edit_rejected(cart, lambda c: c.meta["discountCodes"].__setitem__(0, 7), "discount")
    edit_accepted(cart, lambda c: c.meta["discountCodes"].__delitem__(0))
    edit_accepted(cart, lambda c: c.meta["discountCodes"].append("C" * 64))
    assert len(cart.to_dict()["meta"]["discountCodes"]) == 20


# -- personalisation -------------------------------------------------------------


def pers(c: Client) -> Map:
    return c.lines["L0"]["personalisation"]


def test_personalisation_on_product_without_fields(cart):
    edit_rejected(cart, lambda c: c.lines.__setitem__(
        "L2", new_line("mug", 1, "a", "web", 1, {"engraving": "Hi"})), "no personalisation field 'engraving'")
    edit_rejected(cart, lambda c: c.lines["L1"].__setitem__("personalisation", Map({"x": Text("a")})),
                  "no personalisation field")
    # an empty personalisation map names no field
    edit_accepted(cart, lambda c: c.lines["L1"].__setitem__("personalisation", Map()))


def test_personalisation_unknown_field(cart):
    edit_rejected(cart, lambda c: pers(c).__setitem__("colour", Text("red")), "no personalisation field 'colour'")


def test_personalisation_text(cart):
    edit_accepted(cart, lambda c: pers(c)["engraving"].insert(2, " there!!!!"))  # 12 characters
    assert cart.to_dict()["lines"]["L0"]["personalisation"]["engraving"] == "Hi there!!!!"
    edit_rejected(cart, lambda c: pers(c)["engraving"].insert(0, "x"), "over 12 characters")
    edit_rejected(cart, lambda c: pers(c).__setitem__("engraving", Text("x" * 13)), "over 12 characters")
    edit_rejected(cart, lambda c: pers(c).__setitem__("engraving", "plain string"), "must be text")
    edit_rejected(cart, lambda c: pers(c).__setitem__("engraving", Array(["a"])), "must be text")
    edit_accepted(cart, lambda c: pers(c)["engraving"].__delitem__(slice(0, 3)))


def test_personalisation_list(cart):
    edit_accepted(cart, lambda c: pers(c)["initials"].extend(["CD", "EFG", "H"]))  # 4 entries
    edit_rejected(cart, lambda c: pers(c)["initials"].append("I"), "over 4 entries")
    edit_rejected(cart, lambda c: pers(c).__setitem__("initials", Array(list("ABCDE"))), "over 4 entries")
    edit_rejected(cart, lambda c: pers(c)["initials"].__setitem__(0, "ABCD"), "at most 3 characters")
    edit_rejected(cart, lambda c: pers(c)["initials"].__setitem__(0, 12), "entries must be strings")
    edit_rejected(cart, lambda c: pers(c).__setitem__("initials", Text("AB")), "must be a list")


def test_personalisation_not_a_map(cart):
    edit_rejected(cart, lambda c: c.lines["L0"].__setitem__("personalisation", "Hi"), "must be a map")
    edit_rejected(cart, lambda c: c.lines["L0"].__setitem__("personalisation", {"engraving": "Hi"}),
                  "must be a map")


def test_personalisation_text_length_counts_characters_not_utf8_bytes(cart):
    """BUG: FieldSpec.max_length is in characters, but pycrdt's len(Text) is the UTF-8 byte length.

    'é' is one character (one UTF-16 unit as well), two UTF-8 bytes: twelve of them fit a
    12-character engraving, yet the validator rejects them and closes the shopper's socket.
    """
    edit_accepted(cart, lambda c: pers(c).__setitem__("engraving", Text("é" * 12)))
    edit_accepted(cart, lambda c: pers(c)["engraving"].__delitem__(slice(0, 2)))  # "é" * 11
    edit_rejected(cart, lambda c: pers(c)["engraving"].insert(0, "ü" * 2), "over 12 characters")


# -- document size ---------------------------------------------------------------


def test_document_too_large(cart):
    small = Limits(max_lines=8, max_doc_bytes=len(cart.diff()) + 500)
    edit_rejected(cart, lambda c: c.meta.__setitem__("note", "n" * 1000), "too large", limits=small)
    edit_accepted(cart, lambda c: c.meta.__setitem__("note", "n" * 300), limits=small)


def test_overwritten_content_does_not_count(cart):
    """The running sum of updates passes the limit long before the real encoding does."""
    small = Limits(max_lines=8, max_doc_bytes=len(cart.diff()) + 2500)
    for i in range(20):
        edit_accepted(cart, lambda c: c.meta.__setitem__("note", chr(ord("a") + i) * 1000), limits=small)
    assert len(cart.diff()) <= small.max_doc_bytes


CARD = {"card": Product("card", personalisation={"message": FieldSpec("text", max_length=5000)})}


def test_accepted_updates_keep_the_document_within_max_doc_bytes():
    """BUG: CartDoc._check_size assumes the sum of stored updates bounds the encoded document.

    It does not: a one-character deletion in the middle of a text is a ~12-byte update but
    splits the text item, which costs ~25 bytes in the encoded document. Deleting every other
    character of a 1000-character message, one update each, grows the document to ~1.7x the
    limit while every update is accepted (and from then on the cart rejects every edit).
    """
    limits = Limits(max_doc_bytes=8000)
    cart = CartDoc()
    c = Client()
    accept(cart, c.edit(lambda c: c.lines.__setitem__(
        "L1", new_line("card", 1, "a", "web", 1, {"message": "x" * 1000}))), limits, CARD.get)
    for i in range(400):
        update = c.edit(lambda c: c.lines["L1"]["personalisation"]["message"].__delitem__(slice(i, i + 1)))
        verdict = cart.apply_client_update(update, CARD.get, limits)
        if verdict.ok is False:
            break
        assert len(cart.diff()) <= limits.max_doc_bytes, f"after {i + 1} accepted deletions"


# -- content a map cannot show ---------------------------------------------------


def _encoded_line(client: int) -> bytes:
    """lines.L9 = {sku: ring, qty: 1, personalisation: {engraving: "Hi"}}, ids known by construction."""
    return encode_update({client: (0, [
        Item(("type", TYPE_MAP), parent="lines", parent_sub="L9"),  # clock 0
        Item(("any", ["ring"]), parent=(client, 0), parent_sub="sku"),
        Item(("any", [1]), parent=(client, 0), parent_sub="qty"),
        Item(("type", TYPE_MAP), parent=(client, 0), parent_sub="personalisation"),  # clock 3
        Item(("type", TYPE_TEXT), parent=(client, 3), parent_sub="engraving"),  # clock 4
        Item(("string", "Hi"), parent=(client, 4)),  # clocks 5, 6
    ])})


def test_encoded_line_is_valid(cart):
    accept(cart, _encoded_line(555))
    assert cart.to_dict()["lines"]["L9"] == {"sku": "ring", "qty": 1, "personalisation": {"engraving": "Hi"}}


@pytest.mark.parametrize("parent", [
    pytest.param("lines", id="lines-root"),
    pytest.param("meta", id="meta-root"),
    pytest.param((555, 0), id="line-map"),
    pytest.param((555, 3), id="personalisation-map"),
])
def test_list_content_inside_a_map_is_rejected(cart, parent):
    """BUG: an item with no key (array content) under a Y.Map is accepted unchecked.

    Maps only show keyed entries, so this content is invisible to every reader and to the
    validator: the Watcher sees an event with no keys and no path, records nothing, and the
    update passes. It is stored and relayed, and it can carry anything (here a nested map
    with arbitrary keys), up to max_doc_bytes, in `lines`, `meta`, a line or its personalisation.
    """
    accept(cart, _encoded_line(555))
    hidden = encode_update({777: (0, [
        Item(("any", ["anything", {"price": 0}]), parent=parent),
        Item(("type", TYPE_MAP), origin=(777, 1)),
        Item(("any", ["ordered"]), parent=(777, 2), parent_sub="status"),
    ])})
    reject(cart, hidden)


def test_embedded_type_in_personalisation_text_is_rejected(cart):
    """BUG: a personalisation Y.Text may carry an embedded Y.Map of anything; only its length is checked."""
    c = synced(cart)
    update = c.edit(lambda c: pers(c)["engraving"].insert_embed(1, Map({"price": 0, "blob": "x" * 500})))
    reject(cart, update)


# -- missing dependencies ----------------------------------------------------------


def test_dependent_server_write_sent_first_never_lands(cart):
    """U1 (server write) follows U0 on the same client: U1 first is rejected, not parked."""
    a = synced(cart)
    u0 = a.edit(lambda c: c.lines.__setitem__("L5", Map(line_fields("tee", 2))))
    u1 = a.edit(lambda c: c.server.__setitem__("status", "ordered"))
    reject(cart, u1, follow_up=False)
    accept(cart, u0)
    assert cart_plain(cart)["server"] == SERVER_STATE
    reject(cart, u1, SERVER)
    assert cart_plain(cart)["server"] == SERVER_STATE
    # a later update from the same client that builds on U1 cannot integrate either
    u2 = a.edit(lambda c: c.lines["L5"].__setitem__("qty", 3))
    reject(cart, u2, "missing dependencies")
    assert cart_plain(cart)["server"] == SERVER_STATE


def test_dependent_server_delete_from_another_client(cart):
    """U1 (client B) edits a line that U0 (client A) creates and deletes server items."""
    a, b = synced(cart), synced(cart)
    u0 = a.edit(lambda c: c.lines.__setitem__("L5", Map(line_fields("tee", 2))))
    b.receive(u0)
    u1 = b.edit(lambda c: (c.lines["L5"].__setitem__("qty", 3), c.server.__delitem__("status"),
                           c.server["holds"].__delitem__("L0")))
    reject(cart, u1, follow_up=False)
    assert cart_plain(cart)["server"] == SERVER_STATE
    accept(cart, u0)
    assert cart_plain(cart)["server"] == SERVER_STATE
    assert cart.to_dict()["lines"]["L5"]["qty"] == 2
    # U1 with its dependency present is still a server write
    reject(cart, u1, SERVER)
    assert cart_plain(cart)["server"] == SERVER_STATE


def test_dependent_valid_edit_from_another_client(cart):
    a, b = synced(cart), synced(cart)
    u0 = a.edit(lambda c: c.lines.__setitem__("L5", Map(line_fields("tee", 2))))
    b.receive(u0)
    u1 = b.edit(lambda c: c.lines["L5"].__setitem__("qty", 3))
    reject(cart, u1, "missing dependencies", follow_up=False)
    accept(cart, u0)
    accept(cart, u1)
    assert cart.to_dict()["lines"]["L5"]["qty"] == 3


def test_delete_set_for_unseen_clocks(cart):
    a = synced(cart)
    u0 = a.edit(lambda c: c.lines.__setitem__("L5", Map(line_fields("tee", 2))))
    u1 = a.edit(lambda c: c.lines.__delitem__("L5"))  # a delete set only
    reject(cart, u1, "deletes unknown items", follow_up=False)
    accept(cart, u0)
    assert "L5" in cart.to_dict()["lines"]
    accept(cart, u1)
    assert "L5" not in cart.to_dict()["lines"]


@pytest.mark.parametrize("item", [
    pytest.param(Item(("any", ["X"]), origin=(31337, 5)), id="unseen-origin"),
    pytest.param(Item(("any", ["X"]), right_origin=(31337, 5)), id="unseen-right-origin"),
    pytest.param(Item(("any", [3]), parent=(31337, 0), parent_sub="qty"), id="unseen-parent"),
    pytest.param(Item(("any", ["ordered"]), origin=(31337, 0), parent_sub="status"), id="unseen-origin-server-key"),
])
def test_crafted_items_with_unseen_dependencies(cart, item):
    reject(cart, encode_update({4711: (0, [item])}), "missing dependencies")
    # the dependency arriving later does not revive them
    accept(cart, encode_update({31337: (0, [Item(("any", [f"C{i}" for i in range(6)]), parent="meta",
                                                 parent_sub="note")])}))
    assert read_state_vector(cart.state()).get(4711, 0) == 0
    assert cart_plain(cart)["server"] == SERVER_STATE


def test_update_starting_past_the_known_clock(cart):
    a = synced(cart, client_id=4712)
    accept(cart, a.edit(lambda c: c.meta.__setitem__("note", "one")))
    # clocks 1.. exist only in the attacker's imagination: clock 5 leaves a gap
    reject(cart, encode_update({4712: (5, [Item(("any", ["x"]), parent="meta", parent_sub="note")])}),
           "missing dependencies")


def test_failed_server_write_is_not_lost_by_a_later_rejection(cart):
    """BUG: CartDoc.write keeps a change that raised half-way in the doc but not in _history.

    pycrdt commits the transaction even when the block raises, so the doc shows the partial
    write (and a client syncing now receives it), yet write() raised before appending the
    update to _history. The next rejected client update rebuilds the doc from _history and
    the write silently disappears. The client that synced it still holds items of the old
    server client id, so its next sync step 2 carries them back and is rejected as a
    'server' write: that client can no longer connect to the cart.
    """
    def pricing_fails(c: CartDoc) -> None:
        c.server["status"] = "checking_out"
        raise RuntimeError("pricing service down")

    with pytest.raises(RuntimeError):
        cart.write(pricing_fails)
    seen = cart.to_dict()["status"]
    observer = synced(cart)
    assert isinstance(cart.apply_client_update(b"\xff", catalog, LIMITS), Rejected)
    assert cart.to_dict()["status"] == seen, "a rejected update changed the cart"
    accept(cart, observer.doc.get_update(cart.state()))


def _server_clock(cart: CartDoc) -> tuple[int, int]:
    sid = cart.doc.client_id
    return sid, read_state_vector(cart.state()).get(sid, 0)


@pytest.mark.parametrize("start_offset, length", [(0, 1), (0, 1000), (5, 10)])
def test_pre_deleting_future_server_items(cart, start_offset, length):
    sid, next_clock = _server_clock(cart)
    attack = encode_update(deletes={sid: [(next_clock + start_offset, length)]})
    reject(cart, attack, "deletes unknown items", follow_up=False)
    cart.write(lambda c: (c.server.__setitem__("status", "checking_out"),
                          c.server.__setitem__("checkout", Map({"state": "started", "step": "details"}))))
    assert cart.to_dict()["status"] == "checking_out"
    assert cart.to_dict()["checkout"] == {"state": "started", "step": "details"}
    # and for every replica: a fresh client, and a reload from the compacted snapshot
    c = synced(cart)
    assert c.plain()["server"]["status"] == "checking_out"
    assert CartDoc(cart.compact()).to_dict()["checkout"] == {"state": "started", "step": "details"}


def test_pre_delete_bundled_with_a_valid_edit_is_rejected_whole(cart):
    sid, next_clock = _server_clock(cart)
    c = synced(cart)
    valid = c.edit(lambda c: c.lines.__setitem__("L5", Map(line_fields("tee", 2))))
    attack = merge_updates(valid, encode_update(deletes={sid: [(next_clock, 20)]}))
    reject(cart, attack, "deletes unknown items")
    assert "L5" not in cart.to_dict()["lines"]
    cart.write(lambda c: c.server.__setitem__("status", "closed"))
    assert cart.to_dict()["status"] == "closed"


def test_pre_delete_before_the_server_ever_wrote():
    cart = CartDoc()
    sid, next_clock = _server_clock(cart)
    assert next_clock == 0
    reject(cart, encode_update(deletes={sid: [(0, 50)]}), "deletes unknown items", follow_up=False)
    cart.write(_server_setup)
    assert cart_plain(cart)["server"] == SERVER_STATE


def test_gc_range_claimed_under_the_server_id_does_not_hide_server_writes(cart):
    sid, next_clock = _server_clock(cart)
    verdict = cart.apply_client_update(encode_update({sid: (next_clock, [Item(("gc", 10))])}), catalog, LIMITS)
    cart.write(lambda c: c.server.__setitem__("status", "checking_out"))
    assert cart.to_dict()["status"] == "checking_out"
    c = synced(cart)
    assert c.plain()["server"]["status"] == "checking_out"
    assert CartDoc(cart.compact()).to_dict()["status"] == "checking_out"
    assert verdict.ok or isinstance(verdict, Rejected)


def test_forged_duplicate_of_known_clocks_never_surfaces(cart):
    """Re-sending known clocks with other content (here: a server write) must have no effect anywhere."""
    a = synced(cart, client_id=4242)
    original = a.edit(lambda c: c.meta.__setitem__("note", "hello"))
    accept(cart, original)
    forged = encode_update({4242: (0, [Item(("any", ["ordered"]), parent="server", parent_sub="status")])})
    verdict = cart.apply_client_update(forged, catalog, LIMITS)
    assert cart.to_dict()["status"] == "open"
    if verdict.ok:  # stored: it must stay harmless on reload and on replay
        assert CartDoc(_BASE, [original, forged]).to_dict()["status"] == "open"
        replica = Client()
        for u in (_BASE, original, forged):
            replica.receive(u)
        assert replica.plain()["server"]["status"] == "open"


# -- robustness ----------------------------------------------------------------


def test_malformed_updates_rejected(cart):
    good = synced(cart).edit(lambda c: c.lines["L1"].__setitem__("qty", 3))
    reject(cart, good[:-3], "malformed")
    reject(cart, good + b"\x00", "malformed")
    reject(cart, b"", "malformed")
    reject(cart, b"\xff\xff\xff", "malformed")


def test_empty_update_accepted(cart):
    before = snapshot(cart)
    accept(cart, b"\x00\x00")
    state_equal(cart, before)


def test_validate_helper_leaves_doc_untouched(cart):
    doc = Doc()
    doc.apply_update(cart.diff())
    state = doc.get_state()
    ok = synced(cart).edit(lambda c: c.lines["L1"].__setitem__("qty", 3))
    bad = synced(cart).edit(lambda c: c.server.__setitem__("status", "ordered"))
    assert validate(doc, ok, catalog, LIMITS).ok
    assert isinstance(validate(doc, bad, catalog, LIMITS), Rejected)
    assert doc.get_state() == state


def _sample_updates() -> list[bytes]:
    c = synced(CartDoc(_BASE))
    return [
        c.edit(lambda c: c.lines.__setitem__("L7", new_line("ring", 2, "u", "kiosk", 5, {"engraving": "Jo😀",
                                                                                       "initials": ["J"]}))),
        c.edit(lambda c: c.lines["L1"].__setitem__("qty", 4)),
        c.edit(lambda c: c.lines["L7"]["personalisation"]["engraving"].insert(1, "e")),
        c.edit(lambda c: c.meta["discountCodes"].append("SPRING")),
        c.edit(lambda c: c.lines.__delitem__("L0")),
    ]


_SAMPLES = _sample_updates()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_updates_never_raise_and_rejections_roll_back(data):
    cart = CartDoc(_BASE)
    # the samples form a chain: apply a prefix, then a mutated next one
    k = data.draw(st.integers(0, len(_SAMPLES) - 1))
    for u in _SAMPLES[:k]:
        accept(cart, u)
    u = mutate(_SAMPLES[k], data, max_edits=3)
    before = snapshot(cart)
    verdict = cart.apply_client_update(u, catalog, LIMITS)
    if isinstance(verdict, Rejected):
        state_equal(cart, before)
    else:
        assert cart_plain(cart)["server"] == SERVER_STATE
        assert set(cart.doc.keys()) <= ROOTS


# -- property tests: forbidden edits are rejected, valid edits accepted ------------

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**31), 2**31 - 1),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=10))
# Characters that are one code point and one UTF-16 unit each, so "n characters" means the same
# whichever way the limit is counted, but up to three UTF-8 bytes each.
bmp_chars = st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",))


def _forbidden_server(draw) -> Callable[[Client], Any]:
    kind = draw(st.sampled_from(["set", "nested", "delete", "nested-delete", "new-map"]))
    key = draw(st.sampled_from(["status", "holds", "pricing", "checkout", "mergedInto", "x"]))
    value = draw(json_scalars)
    if kind == "set":
        return lambda c: c.server.__setitem__(key, value)
    if kind == "nested":
        field = draw(st.sampled_from(["status", "qty", "y"]))
        return lambda c: c.server["holds"]["L0"].__setitem__(field, value)
    if kind == "delete":
        k = draw(st.sampled_from(sorted(SERVER_STATE)))
        return lambda c: c.server.__delitem__(k)
    if kind == "nested-delete":
        field = draw(st.sampled_from(["currency", "total"]))
        return lambda c: c.server["pricing"].__delitem__(field)
    return lambda c: c.server.__setitem__(key, Map({"a": value}))


def _closure(fn: Callable[..., Any]) -> dict[str, Any]:
    """The values a generated edit closes over, for the failure report."""
    cells = fn.__closure__ or ()
    return {name: cell.cell_contents for name, cell in zip(fn.__code__.co_freevars, cells)
            if name not in ("draw", "c")}


@st.composite
def forbidden_edits(draw) -> tuple[str, Callable[[Client], Any]]:
    rule = draw(st.sampled_from([
        "server", "root", "sku", "qty-new", "qty-set", "line-field", "meta-field", "note", "codes",
        "pers-field", "pers-text", "pers-list", "not-map", "too-many", "drop-sku",
    ]))
    line_id = draw(ids)
    if rule == "server":
        return rule, _forbidden_server(draw)
    if rule == "root":
        root = draw(st.text(min_size=1, max_size=8).filter(lambda r: r not in ROOTS))
        value = draw(json_scalars)
        return rule, lambda c: c.doc.get(root, type=Map).__setitem__("k", value)
    if rule == "sku":
        sku = draw(st.text(max_size=8).filter(lambda s: s not in PRODUCTS))
        return rule, lambda c: c.lines.__setitem__(line_id, Map(line_fields(sku)))
    bad_qty = draw(st.one_of(
        st.integers(-(2**53), 0), st.integers(6, 2**53), st.booleans(), st.text(max_size=3),
        st.floats().filter(lambda f: not f.is_integer()), st.floats(min_value=6), st.none(),
    ))
    if rule == "qty-new":
        return rule, lambda c: c.lines.__setitem__(line_id, Map(line_fields("mug", bad_qty)))
    if rule == "qty-set":
        return rule, lambda c: c.lines["L1"].__setitem__("qty", bad_qty)
    if rule == "line-field":
        field = draw(st.text(max_size=8).filter(lambda f: f not in LINE_FIELDS))
        value = draw(json_scalars)
        return rule, lambda c: c.lines["L1"].__setitem__(field, value)
    if rule == "meta-field":
        field = draw(st.text(max_size=8).filter(lambda f: f not in META_FIELDS))
        value = draw(json_scalars)
        return rule, lambda c: c.meta.__setitem__(field, value)
    if rule == "note":
        note = draw(st.one_of(st.integers(2001, 2100).map(lambda n: "n" * n),
                              st.integers(-(2**53), 2**53), st.booleans()))
        return rule, lambda c: c.meta.__setitem__("note", note)
    if rule == "codes":
        codes = draw(st.one_of(
            st.lists(st.text(min_size=1, max_size=64), min_size=21, max_size=25),
            st.lists(st.text(min_size=1, max_size=5), max_size=3).flatmap(
                lambda ok: st.sampled_from(["", "c" * 65, 5, None, True]).map(lambda bad: ok + [bad])),
        ))
        as_array = draw(st.booleans())
        return rule, lambda c: c.meta.__setitem__("discountCodes", Array(codes) if as_array else codes)
    if rule == "pers-field":
        field = draw(st.text(max_size=8).filter(lambda f: f not in ("engraving", "initials")))
        return rule, lambda c: pers(c).__setitem__(field, Text("x"))
    if rule == "pers-text":
        n = draw(st.integers(13, 40))
        return rule, lambda c: pers(c).__setitem__("engraving", Text("x" * n))
    if rule == "pers-list":
        entries = draw(st.one_of(
            st.lists(st.text(alphabet="ABC", min_size=1, max_size=3), min_size=5, max_size=8),
            st.lists(st.text(alphabet="ABC", min_size=4, max_size=6), min_size=1, max_size=2),
        ))
        return rule, lambda c: pers(c).__setitem__("initials", Array(entries))
    if rule == "not-map":
        value = draw(json_scalars)
        return rule, lambda c: c.lines.__setitem__(line_id, value)
    if rule == "too-many":
        return rule, lambda c: [c.lines.__setitem__(f"{line_id}-{i}", Map(line_fields())) for i in range(7)]
    return rule, lambda c: c.lines["L0"].__delitem__("sku")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(forbidden_edits())
def test_every_forbidden_edit_is_rejected_and_changes_nothing(edit):
    _rule, change = edit
    note(f"values: {_closure(change)}")
    cart = CartDoc(_BASE)
    edit_rejected(cart, change)
    assert cart_plain(cart)["server"] == SERVER_STATE


@st.composite
def valid_edits(draw) -> Callable[[Client], Any]:
    kind = draw(st.sampled_from([
        "add", "add-personalised", "qty", "delete", "note", "no-note", "push-code", "drop-code",
        "engrave", "unengrave", "initials", "added-by",
    ]))
    if kind == "add":
        sku = draw(st.sampled_from(SKUS))
        qty = draw(st.integers(1, PRODUCTS[sku].max_qty))
        as_float = draw(st.booleans())
        line_id = draw(ids)
        return lambda c: c.lines.__setitem__(line_id, Map(line_fields(sku, float(qty) if as_float else qty)))
    if kind == "add-personalised":
        fields = {}
        if draw(st.booleans()):
            fields["engraving"] = draw(st.text(bmp_chars, max_size=12))
        if draw(st.booleans()):
            fields["initials"] = draw(st.lists(st.text(bmp_chars, max_size=3), max_size=4))
        qty = draw(st.integers(1, 3))
        line_id = draw(ids)
        return lambda c: c.lines.__setitem__(line_id, new_line("ring", qty, "u", "web", 1, fields))
    if kind == "qty":
        line_id = draw(st.sampled_from(["L0", "L1"]))
        qty = draw(st.integers(1, 3))
        return lambda c: c.lines[line_id].__setitem__("qty", qty)
    if kind == "delete":
        line_id = draw(st.sampled_from(["L0", "L1"]))
        return lambda c: c.lines.__delitem__(line_id)
    if kind == "note":
        note = draw(st.text(max_size=200))
        return lambda c: c.meta.__setitem__("note", note)
    if kind == "no-note":
        return lambda c: c.meta.__delitem__("note")
    if kind == "push-code":
        codes = draw(st.lists(st.text(min_size=1, max_size=64), min_size=1, max_size=19))
        return lambda c: c.meta["discountCodes"].extend(codes)
    if kind == "drop-code":
        return lambda c: c.meta["discountCodes"].__delitem__(0)
    if kind == "engrave":
        extra = draw(st.text(bmp_chars, min_size=1, max_size=10))  # "Hi" + up to 10
        at_start = draw(st.booleans())
        return lambda c: pers(c)["engraving"].insert(0 if at_start else len(pers(c)["engraving"]), extra)
    if kind == "unengrave":
        return lambda c: pers(c)["engraving"].__delitem__(slice(0, 1))
    if kind == "initials":
        entries = draw(st.lists(st.text(bmp_chars, max_size=3), max_size=3))
        return lambda c: pers(c)["initials"].extend(entries)
    who = draw(st.text(min_size=1, max_size=200))
    return lambda c: c.lines["L1"].__setitem__("addedBy", who)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_edits())
def test_every_valid_edit_is_accepted(change):
    note(f"values: {_closure(change)}")
    cart = CartDoc(_BASE)
    c = synced(cart)
    update = c.edit(change)
    assume(update)  # e.g. extending a list by nothing makes no transaction update
    accept(cart, update)
    assert cart_plain(cart) == c.plain()
    assert cart_plain(cart)["server"] == SERVER_STATE
