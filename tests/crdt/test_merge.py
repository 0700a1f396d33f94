"""crdt.merge: merging a source cart into a target (claim / explicit merge), rules, holds, convergence."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Map

from livecart.crdt import server_root
from livecart.crdt.cart import CartDoc, new_line, plain
from livecart.crdt.merge import (
    HoldMove, MergeError, MergePlan, apply_merge, check_mergeable, merged_source_status, plan_merge, settle_holds,
)
from livecart.crdt.schema import Limits
from livecart.crdt.validate import check_line, check_meta

from .ytools import PRODUCTS, SKUS, Client, cart_plain, catalog

LIMITS = Limits(max_lines=8, max_doc_bytes=64 * 1024, max_note_chars=20, max_discount_codes=4)
T0 = 1_700_000_000_000


@dataclass
class L:
    """A line of a test cart."""

    sku: str
    qty: int
    pers: dict[str, str | list[str]] | None = None
    at: int = 0
    by: str = "cust-1"
    channel: str = "web"


@dataclass
class Spec:
    lines: dict[str, L] = field(default_factory=dict)
    note: str | None = None
    codes: list[str] | None = None


def build(spec: Spec, status: str = "open", merged_into: str | None = None,
          limits: Limits = LIMITS) -> CartDoc:
    """A cart written the way real carts are: server root by the server, lines and meta by a checked client."""
    cart = CartDoc()
    server_root.init(cart)
    client = Client()
    client.sync_from(cart)

    def change(c: Client) -> None:
        for line_id, ln in spec.lines.items():
            c.lines[line_id] = new_line(ln.sku, ln.qty, ln.by, ln.channel, T0 + ln.at, ln.pers)
        if spec.note is not None:
            c.meta["note"] = spec.note
        if spec.codes is not None:
            c.meta["discountCodes"] = Array(list(spec.codes))

    update = client.edit(change)
    if update:
        assert cart.apply_client_update(update, catalog, limits).ok
    if status != "open" or merged_into:
        def server(c: CartDoc) -> None:
            c.server["status"] = status
            if merged_into:
                c.server["mergedInto"] = merged_into
        cart.write(server)
    return cart


def lines_of(cart: CartDoc) -> dict[str, dict[str, Any]]:
    return cart.to_dict()["lines"]


def merge(source: CartDoc, target: CartDoc, limits: Limits = LIMITS) -> tuple[MergePlan, bytes]:
    plan = plan_merge(source, target, limits=limits)
    return plan, apply_merge(target, plan)


def assert_valid(cart: CartDoc, limits: Limits = LIMITS) -> None:
    """Re-validates a whole cart with the schema rules clients are held to."""
    fresh = CartDoc(cart.diff())
    with fresh.doc.transaction():
        assert len(fresh.lines) <= limits.max_lines
        for line_id, line in fresh.lines.items():
            assert check_line(line_id, line, catalog, limits) is None
        for key, value in fresh.meta.items():
            assert check_meta(key, value, limits) is None


# -- combine --------------------------------------------------------------------


def test_combine_takes_the_larger_qty_and_frees_the_surplus() -> None:
    source = build(Spec({"s1": L("mug", 4)}))
    target = build(Spec({"t1": L("mug", 2)}))
    plan, update = merge(source, target)
    assert update
    assert plan.moves == [HoldMove("s1", "t1", 4, "mug")]
    assert plan.create == [] and plan.line_map == {"s1": "t1"}
    assert lines_of(target) == {"t1": {"sku": "mug", "qty": 4, "addedBy": "cust-1", "channel": "web",
                                      "addedAt": T0}}
    # both fully held: 2 + 4 units, the combined line wants 4: 2 go back
    out = settle_holds(plan, {"s1": 4}, {"t1": 2})
    assert out.held == {"t1": 4} and out.released == {"mug": 2}
    # the source only partly held: nothing to spare
    out = settle_holds(plan, {"s1": 1}, {"t1": 2})
    assert out.held == {"t1": 3} and out.released_total == 0


def test_combine_keeps_the_target_qty_when_it_is_larger() -> None:
    source = build(Spec({"s1": L("tee", 3)}))
    target = build(Spec({"t1": L("tee", 5)}))
    plan, _ = merge(source, target)
    assert plan.raise_qty == [] and plan.moves == [HoldMove("s1", "t1", 5, "tee")]
    assert lines_of(target)["t1"]["qty"] == 5
    assert settle_holds(plan, {"s1": 3}, {"t1": 5}).released == {"tee": 3}
    assert settle_holds(plan, {"s1": 3}, {"t1": 4}).held == {"t1": 5}


def test_several_source_lines_of_one_sku_combine_into_one_target_line() -> None:
    source = build(Spec({"s1": L("pen", 3, at=1), "s2": L("pen", 7, at=2), "s3": L("pen", 2, at=3)}))
    target = build(Spec({"t1": L("pen", 5)}))
    plan, _ = merge(source, target)
    assert sorted(plan.moves, key=lambda m: m.src_line) == [
        HoldMove("s1", "t1", 7, "pen"), HoldMove("s2", "t1", 7, "pen"), HoldMove("s3", "t1", 7, "pen")]
    assert list(lines_of(target)) == ["t1"] and lines_of(target)["t1"]["qty"] == 7
    out = settle_holds(plan, {"s1": 3, "s2": 7, "s3": 2}, {"t1": 5})
    assert out.held == {"t1": 7} and out.released == {"pen": 10}


def test_several_source_lines_of_a_sku_the_target_lacks_become_one_line() -> None:
    source = build(Spec({"s2": L("pen", 7, at=2, by="assist-9", channel="store"), "s1": L("pen", 3, at=1)}))
    target = build(Spec({"t1": L("mug", 1)}))
    plan, _ = merge(source, target)
    # the earliest source line is copied (its id, its fields), with the largest qty
    assert lines_of(target)["s1"] == {"sku": "pen", "qty": 7, "addedBy": "cust-1", "channel": "web",
                                      "addedAt": T0 + 1}
    assert "s2" not in lines_of(target)
    assert plan.line_map == {"s1": "s1", "s2": "s1"}
    out = settle_holds(plan, {"s1": 3, "s2": 7}, {})
    assert out.held == {"s1": 7} and out.released == {"pen": 3}


def test_combines_into_the_target_line_with_the_most_units() -> None:
    # two people added mugs at the same moment: two target lines, both count
    source = build(Spec({"s1": L("mug", 4)}))
    target = build(Spec({"t1": L("mug", 2, at=1), "t2": L("mug", 3, at=2)}))
    plan, _ = merge(source, target)
    assert plan.line_map == {"s1": "t2"}
    assert {k: v["qty"] for k, v in lines_of(target).items()} == {"t1": 2, "t2": 4}


# -- personalisation ------------------------------------------------------------


def test_personalised_lines_stay_separate_with_their_content() -> None:
    engraved = {"engraving": "For Ana 😀", "initials": ["AB", "C"]}
    source = build(Spec({"s1": L("ring", 2, engraved), "s2": L("ring", 1, at=1)}))
    target = build(Spec({"t1": L("ring", 1, {"engraving": "Bo"}), "t2": L("ring", 3, {"initials": []})}))
    replica = Client()
    replica.sync_from(target)
    plan, update = merge(source, target)
    got = lines_of(target)
    # the engraved source ring is its own line; the plain source ring has no plain target ring to join
    assert set(got) == {"t1", "t2", "s1", "s2"}
    assert got["s1"]["personalisation"] == engraved and got["s1"]["qty"] == 2
    assert got["t1"]["personalisation"] == {"engraving": "Bo"} and got["t1"]["qty"] == 1
    assert got["t2"]["personalisation"] == {"initials": []} and got["t2"]["qty"] == 3
    assert "personalisation" not in got["s2"]
    assert sorted(plan.moves, key=lambda m: m.src_line) == [
        HoldMove("s1", "s1", 2, "ring"), HoldMove("s2", "s2", 1, "ring")]
    # the content is real Y.Text / Y.Array again, on the server and on a client that gets the update
    replica.receive(update)
    for doc_lines in (target.lines, replica.lines):
        pers = doc_lines["s1"]["personalisation"]
        assert type(pers["engraving"]).__name__ == "Text" and str(pers["engraving"]) == "For Ana 😀"
        assert type(pers["initials"]).__name__ == "Array" and list(pers["initials"]) == ["AB", "C"]
    assert replica.plain() == cart_plain(target)
    assert_valid(target)


def test_a_plain_source_line_never_joins_a_personalised_target_line() -> None:
    source = build(Spec({"s1": L("ring", 2)}))
    target = build(Spec({"t1": L("ring", 1, {"engraving": "X"})}))
    plan, _ = merge(source, target)
    assert plan.raise_qty == [] and plan.line_map == {"s1": "s1"}
    assert lines_of(target)["t1"]["qty"] == 1 and lines_of(target)["s1"]["qty"] == 2


def test_an_empty_personalisation_map_counts_as_none() -> None:
    source = build(Spec({"s1": L("ring", 2)}))
    target = CartDoc()
    server_root.init(target)
    target.write(lambda c: c.lines.__setitem__(
        "t1", Map({"sku": "ring", "qty": 1, "addedAt": T0, "personalisation": Map()})))
    plan, _ = merge(source, target)
    assert plan.line_map == {"s1": "t1"} and lines_of(target)["t1"]["qty"] == 2


# -- ids ----------------------------------------------------------------------------


def test_a_source_id_the_target_uses_gets_a_derived_one() -> None:
    source = build(Spec({"x": L("tee", 2, at=1), "x-m": L("pen", 1, at=2), "y": L("mug", 1, at=3)}))
    target = build(Spec({"x": L("mug", 3)}))
    plan, _ = merge(source, target)
    # "x-m" is free in the target, so it keeps it; "x" then needs "x-m2"; "y" combines into target "x"
    assert plan.line_map == {"x": "x-m2", "x-m": "x-m", "y": "x"}
    got = lines_of(target)
    assert {k: (v["sku"], v["qty"]) for k, v in got.items()} == {
        "x": ("mug", 3), "x-m": ("pen", 1), "x-m2": ("tee", 2)}


def test_derived_ids_stay_within_the_id_length_limit() -> None:
    long_id = "L" * LIMITS.max_string_chars
    source = build(Spec({long_id: L("tee", 1)}))
    target = build(Spec({long_id: L("pen", 1), long_id[:-2] + "-m": L("mug", 1)}))
    plan, _ = merge(source, target)
    new = plan.line_map[long_id]
    assert len(new) <= LIMITS.max_string_chars and new not in (long_id, long_id[:-2] + "-m")
    assert new.endswith("-m2")
    assert_valid(target)


# -- meta --------------------------------------------------------------------------


@pytest.mark.parametrize("target_note, source_note, expected", [
    (None, "ring bell", "ring bell"),
    ("", "ring bell", "ring bell"),
    ("gift", "ring bell", "gift\nring bell"),
    ("gift", None, "gift"),
    ("gift", "", "gift"),
    ("gift", "gift", "gift"),  # the same note from both channels is not doubled
    ("a" * 15, "bbbbbbbbbb", "a" * 15 + "\nbbbb"),  # cut at max_note_chars (20)
    ("a" * 20, "b", "a" * 20),
])
def test_note(target_note: str | None, source_note: str | None, expected: str) -> None:
    source = build(Spec(note=source_note))
    target = build(Spec(note=target_note))
    plan, _ = merge(source, target)
    assert target.to_dict()["meta"]["note"] == expected
    assert plan.note == (None if expected == (target_note or "") else expected)


@pytest.mark.parametrize("target_codes, source_codes, expected", [
    (None, ["A", "B"], ["A", "B"]),
    (["B"], ["A", "B", "C"], ["B", "A", "C"]),
    (["A", "B", "C"], ["D", "E"], ["A", "B", "C", "D"]),  # capped at max_discount_codes (4)
    (["A", "B"], [], ["A", "B"]),
    (["A"], ["B", "B"], ["A", "B"]),
])
def test_discount_codes(target_codes: list[str] | None, source_codes: list[str], expected: list[str]) -> None:
    source = build(Spec(codes=source_codes))
    target = build(Spec(codes=target_codes))
    replica = Client()
    replica.sync_from(target)
    plan, update = merge(source, target)
    assert plan.discount_codes == expected
    assert target.to_dict()["meta"]["discountCodes"] == expected
    if update:
        replica.receive(update)
    assert replica.plain() == cart_plain(target)


# -- errors ------------------------------------------------------------------------


def test_merging_a_cart_into_itself() -> None:
    cart = build(Spec({"a": L("mug", 1)}))
    with pytest.raises(MergeError) as err:
        plan_merge(cart, cart)
    assert err.value.code == "same_cart"
    with pytest.raises(MergeError) as err:
        check_mergeable(cart, CartDoc(cart.diff()), "c1", "c1")
    assert err.value.code == "same_cart"


def test_a_merged_source_names_where_it_went() -> None:
    source = build(Spec({"a": L("mug", 1)}))
    target = build(Spec())
    replica = CartDoc(source.diff())
    pending = source.pending_updates
    update = merged_source_status(source, "cart-target")
    assert source.pending_updates == pending + 1  # one recorded transaction, both keys
    assert source.to_dict()["status"] == "merged" and source.to_dict()["mergedInto"] == "cart-target"
    replica.apply_trusted(update)
    assert (replica.to_dict()["status"], replica.to_dict()["mergedInto"]) == ("merged", "cart-target")
    with pytest.raises(MergeError) as err:
        plan_merge(source, target, source_id="cart-src", target_id="cart-other")
    assert err.value.code == "already_merged" and err.value.into == "cart-target"
    assert "cart-target" in err.value.message and "cart-src" in err.value.message


@pytest.mark.parametrize("status", ["checking_out", "ordered", "closed"])
@pytest.mark.parametrize("side", ["source", "target"])
def test_carts_that_are_not_open(status: str, side: str) -> None:
    carts = {"source": build(Spec({"a": L("mug", 1)})), "target": build(Spec())}
    carts[side] = build(Spec({"a": L("mug", 1)}), status=status)
    with pytest.raises(MergeError) as err:
        plan_merge(carts["source"], carts["target"])
    assert err.value.code == "not_open" and status.replace("_", " ") in err.value.message


def test_a_merged_target_is_not_open_and_says_where_it_went() -> None:
    with pytest.raises(MergeError) as err:
        plan_merge(build(Spec()), build(Spec(), status="merged", merged_into="cart-z"))
    assert err.value.code == "not_open" and err.value.into == "cart-z"


def test_too_many_lines() -> None:
    target = build(Spec({f"t{i}": L("pen", 1) for i in range(6)}))
    # six pens combine into the target's: still 6 lines after the merge, fine
    ok = build(Spec({f"s{i}": L("pen", 2) for i in range(6)}))
    assert plan_merge(ok, target, limits=LIMITS).line_count == 6
    # two new SKUs make 8 (the max); a third line would make 9
    fits = build(Spec({"s1": L("mug", 1), "s2": L("tee", 1)}))
    assert plan_merge(fits, target, limits=LIMITS).line_count == 8
    over = build(Spec({"s1": L("mug", 1), "s2": L("tee", 1), "s3": L("ring", 1, {"engraving": "x"})}))
    before = cart_plain(target)
    with pytest.raises(MergeError) as err:
        plan_merge(over, target, limits=LIMITS)
    assert err.value.code == "too_many_lines" and "9" in err.value.message
    assert cart_plain(target) == before


def test_too_large() -> None:
    roomy = Limits(max_lines=100, max_doc_bytes=64 * 1024)
    big = {"engraving": "x" * 12, "initials": ["abc"] * 4}
    source = build(Spec({f"s{i}": L("ring", 1, big) for i in range(30)}), limits=roomy)
    target = build(Spec({f"t{i}": L("ring", 1, big) for i in range(30)}), limits=roomy)
    tight = Limits(max_lines=100, max_doc_bytes=len(target.diff()) + 200)
    with pytest.raises(MergeError) as err:
        plan_merge(source, target, limits=tight)
    assert err.value.code == "too_large"
    assert plan_merge(source, target, limits=roomy).line_count == 60


def test_a_combined_line_removed_since_the_plan_is_made_again() -> None:
    # The server moves the holds between plan and apply: the target's clients may edit meanwhile.
    source = build(Spec({"s1": L("mug", 1, at=4, channel="app"), "s2": L("tee", 1)}))
    target = build(Spec({"t1": L("mug", 2)}))
    editor = Client()
    editor.sync_from(target)
    plan = plan_merge(source, target)
    assert plan.raise_qty == [] and [c.line_id for c in plan.combine] == ["t1"]
    removal = editor.edit(lambda c: c.lines.pop("t1"))
    assert target.apply_client_update(removal, catalog, LIMITS).ok
    update = apply_merge(target, plan)
    # every line a hold moved onto exists, with the qty the hold was capped at
    got = lines_of(target)
    assert {m.dst_line for m in plan.moves} <= set(got)
    assert got["t1"] == {"sku": "mug", "qty": 2, "addedBy": "cust-1", "channel": "app", "addedAt": T0 + 4}
    editor.receive(update)
    assert editor.plain() == cart_plain(target)


@pytest.mark.parametrize("clash", ["other sku", "personalised", "new id taken"])
def test_a_plan_whose_ids_now_name_other_lines_writes_nothing(clash: str) -> None:
    source = build(Spec({"s1": L("ring", 3), "s2": L("tee", 1)}))
    target = build(Spec({"t1": L("ring", 2)}))
    plan = plan_merge(source, target)

    def change(c: CartDoc) -> None:
        if clash == "other sku":
            c.lines["t1"] = new_line("pen", 1, "cust-1", "web", T0)
        elif clash == "personalised":
            c.lines["t1"] = new_line("ring", 2, "cust-1", "web", T0, {"engraving": "x"})
        else:
            c.lines["s2"] = new_line("pen", 1, "cust-1", "web", T0)

    target.write(change)
    before = cart_plain(target), target.pending_updates
    with pytest.raises(MergeError) as err:
        apply_merge(target, plan)
    assert err.value.code == "stale_plan"
    assert (cart_plain(target), target.pending_updates) == before


def test_apply_never_lowers_a_qty_raised_since_the_plan() -> None:
    source = build(Spec({"s1": L("tee", 4)}))
    target = build(Spec({"t1": L("tee", 2)}))
    plan = plan_merge(source, target)
    target.write(lambda c: c.lines["t1"].__setitem__("qty", 9))
    apply_merge(target, plan)
    assert lines_of(target)["t1"]["qty"] == 9


# -- the update -------------------------------------------------------------------


def test_apply_is_one_recorded_transaction() -> None:
    source = build(Spec({"s1": L("mug", 4), "s2": L("ring", 1, {"engraving": "hi"})}, note="n", codes=["A"]))
    target = build(Spec({"t1": L("mug", 2)}))
    pending = target.pending_updates
    update = apply_merge(target, plan_merge(source, target), origin="merge")
    assert update and target.pending_updates == pending + 1
    # a replica built from the stored updates equals the live doc
    assert CartDoc(target.compact()).to_dict() == target.to_dict()


def test_nothing_to_merge_writes_nothing() -> None:
    target = build(Spec({"t1": L("mug", 2)}, note="n"))
    plan = plan_merge(build(Spec()), target)
    assert plan.empty and plan.moves == []
    assert apply_merge(target, plan) == b""


def test_the_plan_is_deterministic() -> None:
    spec_s = Spec({"b": L("pen", 2, at=5), "a": L("pen", 4, at=5), "r": L("ring", 1, {"initials": ["X"]}),
                   "t1": L("tee", 2)}, note="s", codes=["A", "B"])
    spec_t = Spec({"t1": L("mug", 1), "r": L("pen", 1)}, note="t", codes=["B"])
    plans = []
    for _ in range(3):
        source, target = build(spec_s), build(spec_t)
        plans.append(plan_merge(source, target))
        plans.append(plan_merge(CartDoc(source.diff()), CartDoc(target.diff())))
    assert all(p == plans[0] for p in plans)
    # the pens join the target's plain pen line "r"; the source ring and tee need derived ids
    assert plans[0].line_map == {"a": "r", "b": "r", "r": "r-m", "t1": "t1-m"}


# -- properties ------------------------------------------------------------------------

IDS = ["a", "b", "c", "d", "e", "a-m", "x" * 199]
TEXT = st.text(alphabet="ab é😀\n", max_size=12)


@st.composite
def personalisations(draw: st.DrawFn) -> dict[str, str | list[str]] | None:
    fields: dict[str, str | list[str]] = {}
    if draw(st.booleans()):
        fields["engraving"] = draw(TEXT)
    if draw(st.booleans()):
        fields["initials"] = draw(st.lists(st.text(alphabet="ABé😀", max_size=3), max_size=4))
    return fields or None


@st.composite
def carts(draw: st.DrawFn) -> Spec:
    ids = draw(st.lists(st.sampled_from(IDS), unique=True, max_size=6))
    lines: dict[str, L] = {}
    for line_id in ids:
        sku = draw(st.sampled_from(SKUS))
        qty = draw(st.integers(1, min(PRODUCTS[sku].max_qty, 12)))
        pers = draw(personalisations()) if sku == "ring" else None
        lines[line_id] = L(sku, qty, pers, at=draw(st.integers(0, 3)))
    note = draw(st.none() | st.text(alphabet="ab é😀\n", max_size=LIMITS.max_note_chars))
    codes = draw(st.none() | st.lists(st.sampled_from("ABCDEF"), max_size=LIMITS.max_discount_codes))
    return Spec(lines, note, codes)


def personalised(ln: dict[str, Any]) -> bool:
    return bool(ln.get("personalisation"))


FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(carts(), carts())
def test_merged_carts_are_valid_and_follow_the_rules(spec_s: Spec, spec_t: Spec) -> None:
    source, target = build(spec_s), build(spec_t)
    src, before = source.to_dict(), target.to_dict()
    limits = replace(LIMITS, max_lines=6)  # carts of up to 6 lines each: merges that would overflow are common
    plain_target_skus = {ln["sku"] for ln in before["lines"].values() if not personalised(ln)}
    plain_source_skus = {ln["sku"] for ln in src["lines"].values() if not personalised(ln)}
    pers_source = [k for k, ln in src["lines"].items() if personalised(ln)]
    expected_new = len(pers_source) + len(plain_source_skus - plain_target_skus)
    try:
        plan = plan_merge(source, target, limits=limits)
    except MergeError as err:
        event("too many lines")
        assert err.code == "too_many_lines"
        # refused only when the merged cart would really be over; never when both inputs together fit
        assert len(before["lines"]) + expected_new > limits.max_lines
        assert len(src["lines"]) + len(before["lines"]) > limits.max_lines
        assert target.to_dict() == before
        return
    apply_merge(target, plan)
    assert_valid(target, limits)
    after = target.to_dict()

    # target lines keep their id, sku and personalisation; a qty only ever goes up
    for line_id, ln in before["lines"].items():
        got = after["lines"][line_id]
        assert {k: v for k, v in got.items() if k != "qty"} == {k: v for k, v in ln.items() if k != "qty"}
        assert got["qty"] >= ln["qty"]
    new_ids = set(after["lines"]) - set(before["lines"])
    assert len(new_ids) == expected_new
    assert len(after["lines"]) == plan.line_count <= limits.max_lines
    # every source line lands on a line of its SKU; its own id when the target did not use it
    assert set(plan.line_map) == set(src["lines"])
    assert sorted(m.src_line for m in plan.moves) == sorted(src["lines"])
    for line_id, ln in src["lines"].items():
        dst = plan.line_map[line_id]
        got = after["lines"][dst]
        assert got["sku"] == ln["sku"]
        if personalised(ln):
            assert dst in new_ids and got["personalisation"] == ln["personalisation"] and got["qty"] == ln["qty"]
            assert {k: got[k] for k in ("addedBy", "channel", "addedAt")} == {
                k: ln[k] for k in ("addedBy", "channel", "addedAt")}
            assert sum(1 for v in plan.line_map.values() if v == dst) == 1
        else:
            same = [q["qty"] for q in src["lines"].values() if q["sku"] == ln["sku"] and not personalised(q)]
            was = before["lines"][dst]["qty"] if dst in before["lines"] else 0
            assert not personalised(got) and got["qty"] == max(same + [was])
            assert (dst in before["lines"]) == (ln["sku"] in plain_target_skus)
        if personalised(ln) and line_id not in before["lines"]:
            assert dst == line_id
        if not personalised(ln):  # one destination per SKU
            assert {plan.line_map[o] for o, q in src["lines"].items()
                    if q["sku"] == ln["sku"] and not personalised(q)} == {dst}
    for move in plan.moves:
        assert move.keep == after["lines"][move.dst_line]["qty"]
    # meta
    t_note, s_note = before["meta"]["note"], src["meta"]["note"]
    if not s_note or s_note == t_note:
        assert after["meta"]["note"] == t_note
    elif not t_note:
        assert after["meta"]["note"] == s_note
    else:
        assert after["meta"]["note"] == (t_note + "\n" + s_note)[: LIMITS.max_note_chars]
    union = list(before["meta"]["discountCodes"])
    for code in src["meta"]["discountCodes"]:
        if code not in union:
            union.append(code)
    assert after["meta"]["discountCodes"] == union[: max(LIMITS.max_discount_codes,
                                                         len(before["meta"]["discountCodes"]))]
    # the same inputs give the same plan
    assert plan_merge(build(spec_s), build(spec_t), limits=limits) == plan


@st.composite
def carts_with_holds(draw: st.DrawFn) -> tuple[Spec, Spec, dict[str, int], dict[str, int]]:
    spec_s, spec_t = draw(carts()), draw(carts())
    held_s = {k: draw(st.integers(0, ln.qty)) for k, ln in spec_s.lines.items()}
    held_t = {k: draw(st.integers(0, ln.qty)) for k, ln in spec_t.lines.items()}
    return spec_s, spec_t, held_s, held_t


@FAST
@given(carts_with_holds())
def test_hold_accounting(case: tuple[Spec, Spec, dict[str, int], dict[str, int]]) -> None:
    spec_s, spec_t, held_s, held_t = case
    source, target = build(spec_s), build(spec_t)
    roomy = Limits(max_lines=100, max_doc_bytes=64 * 1024, max_note_chars=20, max_discount_codes=4)
    plan = plan_merge(source, target, limits=roomy)
    apply_merge(target, plan)
    after = lines_of(target)
    sku_of = {("s", k): ln.sku for k, ln in spec_s.lines.items()} | {
        ("t", k): ln["sku"] for k, ln in after.items()}

    # The stock actor's view: (cart, line) -> units held. Each move is one atomic transfer
    # (take the source hold, add it to the destination's, cap at keep, free the rest).
    holds = {("s", k): v for k, v in held_s.items()} | {("t", k): v for k, v in held_t.items()}
    total_before = sum(holds.values())
    by_sku_before = _by_sku(holds, sku_of)
    freed: dict[str, int] = {}
    moved_in: dict[str, int] = {}
    seen_src: set[str] = set()
    running = total_before
    for move in plan.moves:
        assert move.src_line not in seen_src  # each source hold moves once
        seen_src.add(move.src_line)
        assert sku_of[("s", move.src_line)] == sku_of[("t", move.dst_line)] == move.sku
        units = holds.pop(("s", move.src_line))
        moved_in[move.dst_line] = moved_in.get(move.dst_line, 0) + units
        total = holds.get(("t", move.dst_line), 0) + units
        kept = min(move.keep, total)
        holds[("t", move.dst_line)] = kept
        freed[move.sku] = freed.get(move.sku, 0) + total - kept
        # no unit leaves the carts and comes back: what is held never grows, nothing is lost on the way
        now = sum(holds.values())
        assert now <= running and now + sum(freed.values()) == total_before
        running = now
    assert seen_src == set(spec_s.lines)
    assert not any(cart == "s" for cart, _ in holds)  # the source holds nothing any more

    # what each target line holds: its qty at most, out of its own hold plus what moved onto it
    for line_id, ln in after.items():
        assert holds.get(("t", line_id), 0) == min(ln["qty"], held_t.get(line_id, 0) + moved_in.get(line_id, 0))
    # every surplus unit goes back exactly once
    surplus = sum(freed.values())
    assert total_before == sum(holds.values()) + surplus
    by_sku_after = _by_sku(holds, sku_of)
    for sku in by_sku_before:
        assert by_sku_before[sku] == by_sku_after.get(sku, 0) + freed.get(sku, 0)
    # settle_holds (what the server writes into server.holds) agrees
    outcome = settle_holds(plan, held_s, held_t)
    assert outcome.released == {k: v for k, v in freed.items() if v}
    assert outcome.held == {dst: holds[("t", dst)] for dst in moved_in}


def _by_sku(holds: dict[tuple[str, str], int], sku_of: dict[tuple[str, str], str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, units in holds.items():
        out[sku_of[key]] = out.get(sku_of[key], 0) + units
    return out


@st.composite
def client_edits(draw: st.DrawFn) -> list[tuple[str, Any]]:
    return draw(st.lists(st.one_of(
        st.tuples(st.just("qty"), st.sampled_from(IDS), st.integers(1, 3)),
        st.tuples(st.just("add"), st.sampled_from(["n1", "a-m", "b", "a"]), st.sampled_from(SKUS)),
        st.tuples(st.just("delete"), st.sampled_from(IDS)),
        st.tuples(st.just("note"), TEXT),
        st.tuples(st.just("code"), st.sampled_from("ABCG")),
    ), max_size=3))


@FAST
@given(carts(), carts(), client_edits(), st.booleans())
def test_a_client_replica_converges_with_the_merged_target(spec_s: Spec, spec_t: Spec,
                                                           edits: list[tuple[str, Any]], during: bool) -> None:
    """A client edits the target concurrently with the merge; it reaches the server after the
    merge, or (`during`) between plan and apply, the window in which the server moves the holds."""
    source, target = build(spec_s), build(spec_t)
    roomy = Limits(max_lines=100, max_doc_bytes=64 * 1024, max_note_chars=20, max_discount_codes=4)
    watcher, editor = Client(), Client()  # one only listens, one edits concurrently with the merge
    watcher.sync_from(target)
    editor.sync_from(target)

    def change(c: Client) -> None:
        for kind, *args in edits:
            if kind == "qty" and args[0] in c.lines:
                c.lines[args[0]]["qty"] = args[1]
            elif kind == "add":
                c.lines[args[0]] = new_line(args[1], 1, "assist-2", "store", T0 + 9)
            elif kind == "delete" and args[0] in c.lines:
                del c.lines[args[0]]
            elif kind == "note":
                c.meta["note"] = args[0]
            elif kind == "code":
                codes = c.meta.get("discountCodes")
                if isinstance(codes, Array):
                    codes.append(args[0])
                else:
                    c.meta["discountCodes"] = Array([args[0]])

    concurrent = editor.edit(change)
    plan = plan_merge(source, target, limits=roomy)

    def deliver() -> None:
        nonlocal editor
        verdict = target.apply_client_update(concurrent, catalog, roomy)
        event("concurrent edit " + ("accepted" if verdict.ok else "rejected"))
        if verdict.ok:
            watcher.receive(verdict.update)
        else:  # rejected (e.g. its codes now overflow): the editor is closed and starts afresh
            editor = Client()

    if concurrent and during:
        deliver()
    try:
        update = apply_merge(target, plan)
    except MergeError as err:  # the client took an id the plan creates, or replaced a combined line
        assert err.code == "stale_plan" and during
        event("stale plan")
        return
    if update:
        watcher.receive(update)
    assert watcher.plain() == cart_plain(target)
    if concurrent and not during:
        deliver()
    editor.sync_from(target)
    if update:
        editor.receive(update)
    assert editor.plain() == watcher.plain() == cart_plain(target)
    assert plain(target.lines) == CartDoc(target.diff()).to_dict()["lines"]
    # every line a hold was moved onto is there, of the SKU moved (unless a later client edit removed it)
    if during or not concurrent:
        for move in plan.moves:
            assert target.to_dict()["lines"][move.dst_line]["sku"] == move.sku
