"""Awareness updates judged before they are applied: strict JSON objects of bounded size."""
from __future__ import annotations

import json

import pytest
from pycrdt import Awareness, Doc

from livecart.crdt.awareness import AwarenessLimits, BadAwareness, Entry, read_update, write_update


def update(*entries: tuple[int, int, bytes | str]) -> bytes:
    return write_update([Entry(c, k, s.encode() if isinstance(s, str) else s, False) for c, k, s in entries])


def test_what_a_stock_client_sends_is_read_back_as_sent() -> None:
    awareness = Awareness(Doc())
    awareness.set_local_state({"user": {"name": "Ann", "color": "#f00"}, "focus": True})
    payload = awareness.encode_awareness_update([awareness.client_id])
    (entry,) = read_update(payload)
    clock = awareness.meta[awareness.client_id]["clock"]
    assert (entry.client_id, entry.clock, entry.removal) == (awareness.client_id, clock, False)
    assert json.loads(entry.json) == awareness.get_local_state()
    assert write_update([entry]) == payload


def test_null_is_a_removal() -> None:
    entries = read_update(update((1, 2, "null"), (3, 1, " null "), (4, 1, "{}")))
    assert [e.removal for e in entries] == [True, True, False]


@pytest.mark.parametrize("state", ["NaN", "-Infinity", '{"x":Infinity}', '{"x":1e999}', "", "{'a':1}", "{",
                                   b'{"a":"\xff"}', '{"a":"\\ud800"}'])
def test_what_json_parse_refuses_or_no_utf8_feed_can_carry_is_refused(state: str | bytes) -> None:
    with pytest.raises(BadAwareness) as refused:
        read_update(update((1, 1, state)))
    assert not refused.value.too_large


@pytest.mark.parametrize("state", ["5", "[1]", '"s"', "true", "1.5"])
def test_a_state_must_be_an_object_or_null(state: str) -> None:
    with pytest.raises(BadAwareness, match="object"):
        read_update(update((1, 1, state)))


def test_size_and_depth_are_bounded() -> None:
    limits = AwarenessLimits(max_state_bytes=100, max_depth=3)
    read_update(update((1, 1, json.dumps({"n": "x" * 80}))), limits)
    with pytest.raises(BadAwareness) as refused:
        read_update(update((1, 1, json.dumps({"n": "x" * 100}))), limits)
    assert refused.value.too_large
    read_update(update((1, 1, '{"a":{"b":{"c":1}}}')), limits)
    with pytest.raises(BadAwareness, match="nested"):
        read_update(update((1, 1, '{"a":{"b":{"c":{"d":1}}}}')), limits)


@pytest.mark.parametrize("payload", [
    b"",  # no count
    b"\x05\x01\x01\x02{}",  # five entries declared, one there
    b"\x01\x01\x01\xff\x7f{}",  # a state length past the end: malformed, not large
    update((1, 1, "{}")) + b"\x00",  # bytes after the last entry
    update((2**53, 1, "{}")),  # a client id JavaScript cannot read
    update((1, 2**53, "{}")),
])
def test_malformed_updates_are_refused_as_malformed(payload: bytes) -> None:
    with pytest.raises(BadAwareness) as refused:
        read_update(payload)
    assert not refused.value.too_large
