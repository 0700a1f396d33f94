"""The y-protocols codec: round trips, interoperability with pycrdt's helpers, garbage."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import (
    Awareness,
    Doc,
    Map,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    write_var_uint,
)

from livecart.crdt.protocol import (
    EMPTY_UPDATE,
    QUERY_AWARENESS,
    Kind,
    Message,
    ProtocolError,
    awareness_message,
    parse,
    sync_step1,
    sync_step2,
    update_message,
)


def _doc_with(n: int) -> Doc:
    d = Doc()
    m = d.get("meta", type=Map)
    for i in range(n):
        m[f"k{i}"] = "v" * i
    return d


@pytest.mark.parametrize("n", [0, 1, 30])  # 30 entries make the payload longer than 127 bytes
def test_sync_round_trips(n):
    d = _doc_with(n)
    state, update = d.get_state(), d.get_update()
    assert parse(sync_step1(state)) == Message(Kind.SYNC_STEP1, state)
    assert parse(sync_step2(update)) == Message(Kind.SYNC_STEP2, update)
    assert parse(update_message(update)) == Message(Kind.UPDATE, update)
    if n == 30:
        assert len(update) > 127


def test_encoders_match_pycrdt():
    d = _doc_with(3)
    assert sync_step1(d.get_state()) == create_sync_message(d)
    assert update_message(d.get_update()) == create_update_message(d.get_update())


def test_sync_handshake_with_pycrdt():
    """Our step 1 → pycrdt's reply is a step 2 we parse; applying it syncs the docs."""
    server, client = _doc_with(5), Doc()
    reply = handle_sync_message(sync_step1(client.get_state())[1:], server)
    msg = parse(reply)
    assert msg.kind is Kind.SYNC_STEP2
    client.apply_update(msg.payload)
    assert client.get("meta", type=Map).to_py() == server.get("meta", type=Map).to_py()
    # and pycrdt accepts our step 2
    other = Doc()
    handle_sync_message(sync_step2(server.get_update())[1:], other)
    assert other.get_state() == server.get_state()


def test_empty_update():
    assert parse(update_message(EMPTY_UPDATE)) == Message(Kind.UPDATE, EMPTY_UPDATE)
    assert parse(sync_step2(b"")) == Message(Kind.SYNC_STEP2, b"")


def test_awareness_round_trip():
    d = Doc()
    aw = Awareness(d)
    aw.set_local_state({"user": {"name": "Ann", "role": "assistant"}, "focus": "L1"})
    payload = aw.encode_awareness_update([aw.client_id])
    msg = parse(awareness_message(payload))
    assert msg == Message(Kind.AWARENESS, payload)
    other = Awareness(Doc())
    other.apply_awareness_update(msg.payload, "remote")
    assert other.states[aw.client_id]["user"]["name"] == "Ann"


def test_query_awareness_and_auth():
    assert parse(bytes([QUERY_AWARENESS])) == Message(Kind.QUERY_AWARENESS)
    assert parse(bytes([2, 0])) == Message(Kind.AUTH)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_any_payload_round_trips(payload):
    assert parse(sync_step1(payload)) == Message(Kind.SYNC_STEP1, payload)
    assert parse(sync_step2(payload)) == Message(Kind.SYNC_STEP2, payload)
    assert parse(update_message(payload)) == Message(Kind.UPDATE, payload)
    assert parse(awareness_message(payload)) == Message(Kind.AWARENESS, payload)


@pytest.mark.parametrize("frame", [
    b"",
    b"\x00",  # sync without a sub type
    b"\x00\x00",  # step 1 without a payload
    b"\x00\x03\x00",  # unknown sync sub type
    b"\x00\x07\x02\x00\x00",
    b"\x01",  # awareness without a payload
    b"\x04",  # unknown message type
    b"\x09\x00",
    b"\x80",  # varuint never ends
    b"\x80\x01",  # 128
    b"\x00\x80",
])
def test_garbage_raises_protocol_error(frame):
    with pytest.raises(ProtocolError):
        parse(frame)


def test_truncated_payload_raises_protocol_error():
    """BUG: a frame whose length prefix promises more bytes than it holds parses fine.

    pycrdt's Decoder.read_message slices without checking the length, so parse() returns
    the short payload as if it were whole (for sync, a truncated update or state vector).
    """
    payload = _doc_with(8).get_update()
    parsed = []
    for encode in (sync_step1, sync_step2, update_message, awareness_message):
        for cut in (1, 2, 10):
            try:
                parsed.append((encode.__name__, cut, parse(encode(payload)[:-cut])))
            except ProtocolError:
                pass
    assert parsed == [], f"{len(parsed)} truncated frames parsed, e.g. {parsed[0][:2]}"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_random_frames_parse_or_raise_protocol_error(frame):
    try:
        msg = parse(frame)
    except ProtocolError:
        return
    assert isinstance(msg, Message)
    if msg.kind in (Kind.SYNC_STEP1, Kind.SYNC_STEP2, Kind.UPDATE, Kind.AWARENESS):
        assert msg.payload in frame


def test_length_prefix_is_a_varuint():
    payload = b"x" * 300
    assert sync_step2(payload)[:4] == b"\x00\x01" + write_var_uint(300)
    assert parse(sync_step2(payload)).payload == payload
