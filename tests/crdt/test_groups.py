"""Checkout groups, pure: which groups combine (symmetric, a group with itself always) and the conflicts of lines."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from livecart.crdt import Product
from livecart.crdt.groups import CheckoutGroups, GroupError, rule_from_json

GROUP_NAMES = st.sampled_from(["general", "alcohol", "vouchers", "fresh"])
RULES = st.dictionaries(GROUP_NAMES, st.fixed_dictionaries({}, optional={
    "combinesWith": st.lists(GROUP_NAMES, max_size=3), "conflictsWith": st.lists(GROUP_NAMES, max_size=3)}))


def groups_of(raw: dict) -> CheckoutGroups:
    rules = {}
    for group, body in raw.items():
        try:
            rules[group] = rule_from_json(group, body)
        except GroupError:
            pass
    return CheckoutGroups(rules)


@given(RULES, GROUP_NAMES, GROUP_NAMES)
def test_combining_is_symmetric_and_reflexive(raw: dict, a: str, b: str) -> None:
    groups = groups_of(raw)
    assert groups.combines(a, b) == groups.combines(b, a)
    assert groups.combines(a, a)


def test_conflicts_name_every_line_of_both_groups_in_a_stable_order() -> None:
    products = {"W": Product("W", "Wine", checkout_group="alcohol"), "M": Product("M", "Mug"),
                "T": Product("T", "Tee")}
    groups = CheckoutGroups({"alcohol": rule_from_json("alcohol", {"combinesWith": []})})
    found = groups.conflicts([("t", "T"), ("w", "W"), ("m", "M")], products.get)
    assert found == [{"lineIds": ["m", "t", "w"], "groups": ["alcohol", "general"],
                      "message": "Wine (alcohol) cannot be checked out together with Mug, Tee (general): "
                                 "check them out separately"}]
    assert groups.conflicts([("w", "W"), ("w2", "W")], products.get) == []
    assert CheckoutGroups().conflicts([("w", "W"), ("m", "M")], products.get) == []


@pytest.mark.parametrize("body", [{"conflictsWith": ["alcohol"]}, {"combinesWith": ["a"], "conflictsWith": ["a"]},
                                  {"combinesWith": [1]}, {"other": []}, {"combinesWith": ["x"] * 101}])
def test_bad_rules(body: dict) -> None:
    with pytest.raises(GroupError):
        rule_from_json("alcohol", body)
