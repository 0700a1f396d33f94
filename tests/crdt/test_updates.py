"""read_shape / read_state_vector: the Yjs v1 decoding the validator relies on."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text

from livecart.crdt.updates import (
    MalformedUpdate,
    UpdateShape,
    missing_dependencies,
    read_shape,
    read_state_vector,
    write_state_vector,
)

from .ytools import Client, Item, TYPE_MAP, capture, encode_update, mutate

CID = 1000  # a fixed client id keeps the expected clocks readable
CID2 = 2**40 + 7  # one whose varuint takes several bytes


def sv_delta(before: bytes, after: bytes) -> dict[int, tuple[int, int]]:
    b, a = read_state_vector(before), read_state_vector(after)
    return {c: (b.get(c, 0), end) for c, end in a.items() if end != b.get(c, 0)}


def edit(doc: Doc, updates: list[bytes], change) -> tuple[bytes, dict[int, tuple[int, int]]]:
    """Runs one transaction; returns its update and the state-vector growth it caused."""
    before = doc.get_state()
    n = len(updates)
    with doc.transaction():
        change()
    assert len(updates) == n + 1
    return updates[-1], sv_delta(before, doc.get_state())


# -- exact shapes of updates produced by pycrdt -------------------------------


def test_map_set_overwrite_and_delete():
    doc = Doc(client_id=CID)
    ups, _sub = capture(doc)
    m = doc.get("meta", type=Map)
    u, _ = edit(doc, ups, lambda: m.__setitem__("note", "hi"))
    assert read_shape(u) == UpdateShape(adds={CID: (0, 1)}, deletes=[])
    u, _ = edit(doc, ups, lambda: (m.__setitem__("a", 1), m.__setitem__("b", [1, 2, {"x": None}])))
    assert read_shape(u) == UpdateShape(adds={CID: (1, 3)}, deletes=[])
    # An overwrite adds one item and deletes the previous value.
    u, _ = edit(doc, ups, lambda: m.__setitem__("note", "hello"))
    assert read_shape(u) == UpdateShape(adds={CID: (3, 4)}, deletes=[(CID, 0, 1)])
    u, _ = edit(doc, ups, lambda: m.__delitem__("a"))
    assert read_shape(u) == UpdateShape(adds={}, deletes=[(CID, 1, 1)])


def test_nested_maps_count_one_tick_per_type_and_per_entry():
    doc = Doc(client_id=CID2)
    ups, _sub = capture(doc)
    lines = doc.get("lines", type=Map)
    line = Map({"sku": "mug", "qty": 2, "personalisation": Map({"engraving": Text("ab")})})
    u, delta = edit(doc, ups, lambda: lines.__setitem__("L1", line))
    # line map 1 + sku 1 + qty 1 + personalisation map 1 + engraving text 1 + "ab" 2
    assert read_shape(u) == UpdateShape(adds={CID2: (0, 7)}, deletes=[])
    assert read_shape(u).adds == delta
    u, delta = edit(doc, ups, lambda: line.__setitem__("qty", 3))
    shape = read_shape(u)
    assert shape.adds == {CID2: (7, 8)} == delta
    assert len(shape.deletes) == 1 and shape.deletes[0][0] == CID2 and shape.deletes[0][2] == 1
    # Deleting the line deletes everything under it; clock 2 (the old qty) is deleted already.
    u, _ = edit(doc, ups, lambda: lines.__delitem__("L1"))
    assert read_shape(u) == UpdateShape(adds={}, deletes=[(CID2, 0, 2), (CID2, 3, 5)])


def test_text_counts_utf16_code_units():
    doc = Doc(client_id=CID)
    ups, _sub = capture(doc)
    t = doc.get("t", type=Text)
    # 'a' 1 + emoji (non-BMP) 2 + 'é' 1 + 'b' 1
    u, delta = edit(doc, ups, lambda: t.insert(0, "a😀éb"))
    assert read_shape(u) == UpdateShape(adds={CID: (0, 5)}, deletes=[])
    assert delta == {CID: (0, 5)}
    u, delta = edit(doc, ups, lambda: t.insert(len(t), "🎉🇫🇷"))  # 2 + 4 (flag = two code points)
    assert read_shape(u).adds == {CID: (5, 11)} == delta
    # pycrdt indexes Text in UTF-8 bytes: 'a' is byte 0, the emoji bytes 1..4.
    u, _ = edit(doc, ups, lambda: t.__delitem__(slice(1, 5)))
    assert read_shape(u) == UpdateShape(adds={}, deletes=[(CID, 1, 2)])
    assert str(t) == "aéb🎉🇫🇷"


def test_array_of_mixed_values_and_deletions():
    doc = Doc(client_id=CID)
    ups, _sub = capture(doc)
    meta = doc.get("meta", type=Map)
    arr = Array([1, "x", 2.5, True, None, [1, 2], {"k": "v"}, Map({"a": 1}), Text("h😀")])
    u, delta = edit(doc, ups, lambda: meta.__setitem__("arr", arr))
    # array type 1 + seven plain values 7 + map 1 + its entry 1 + text 1 + "h😀" 3
    assert read_shape(u) == UpdateShape(adds={CID: (0, 14)}, deletes=[])
    assert delta == {CID: (0, 14)}
    u, _ = edit(doc, ups, lambda: arr.__delitem__(2))  # 2.5 sits at clock 3
    assert read_shape(u) == UpdateShape(adds={}, deletes=[(CID, 3, 1)])
    u, _ = edit(doc, ups, lambda: arr.__delitem__(slice(0, 2)))
    assert read_shape(u) == UpdateShape(adds={}, deletes=[(CID, 1, 2)])
    u, delta = edit(doc, ups, lambda: arr.append("tail"))
    assert read_shape(u).adds == {CID: (14, 15)} == delta


def test_several_clients_and_their_delete_sets():
    a, b = Client(client_id=11), Client(client_id=CID2)
    u0 = a.edit(lambda c: c.meta.__setitem__("discountCodes", Array(["A", "B", "C"])))
    b.receive(u0)
    u1 = b.edit(lambda c: (c.meta["discountCodes"].__delitem__(1), c.meta["discountCodes"].append("D")))
    shape = read_shape(u1)
    assert shape.adds == {CID2: (0, 1)}
    assert shape.deletes == [(11, 2, 1)]
    merged = Doc()
    merged.apply_update(u0)
    merged.apply_update(u1)
    full = read_shape(merged.get_update())
    assert full.adds == {11: (0, 4), CID2: (0, 1)}
    assert full.deletes == [(11, 2, 1)]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["set", "del", "text", "untext", "arr"]),
                          st.text(min_size=1, max_size=6)), min_size=1, max_size=12))
def test_adds_match_state_vector_growth(ops):
    """For any pycrdt transaction, `adds` is exactly the state-vector growth."""
    doc = Doc()
    ups, _sub = capture(doc)
    m = doc.get("meta", type=Map)
    t = doc.get("t", type=Text)
    a = doc.get("a", type=Array)
    for op, s in ops:
        before = doc.get_state()
        n = len(ups)
        with doc.transaction():
            if op == "set":
                m[s] = s
            elif op == "del" and s in m:
                del m[s]
            elif op == "text":
                t += s
            elif op == "untext" and len(t):
                del t[0:len(str(t)[0].encode())]
            elif op == "arr":
                a.append(s)
        if len(ups) == n:
            continue
        shape = read_shape(ups[-1])
        assert shape.adds == sv_delta(before, doc.get_state())
        assert missing_dependencies(shape, read_state_vector(doc.get_state())) is None


# -- malformed input ----------------------------------------------------------


def _sample_update() -> bytes:
    c = Client(client_id=CID2)
    c.edit(lambda c: c.lines.__setitem__("L1", Map({"sku": "mug", "qty": 1})))
    c.edit(lambda c: c.meta.__setitem__("discountCodes", Array(["A", "😀", 3.5, {"x": [True]}])))
    c.edit(lambda c: c.lines.__delitem__("L1"))
    return c.doc.get_update()


def test_valid_sample_decodes():
    shape = read_shape(_sample_update())
    assert shape.adds == {CID2: (0, 8)}  # line 3 + array 1 + four values
    assert shape.deletes


@pytest.mark.parametrize("cut", range(1, 40))
def test_truncated_update_is_malformed(cut):
    u = _sample_update()
    with pytest.raises(MalformedUpdate):
        read_shape(u[: len(u) - cut])


@pytest.mark.parametrize("tail", [b"\x00", b"\x01", b"\xff", b"garbage"])
def test_trailing_bytes_are_malformed(tail):
    with pytest.raises(MalformedUpdate):
        read_shape(_sample_update() + tail)


@pytest.mark.parametrize("data, why", [
    (b"", "ends early"),
    (b"\x80", "ends early"),  # varuint never ends
    (b"\xff" * 12, "too long"),
    (b"\x01\x01\x05\x00\x1f\x01\x04meta\x00", "unknown content type 31"),
    (b"\x01\x01\x05\x00\x08\x01\x04meta\x01\x6f\x00", "unknown value tag 111"),
    (encode_update({5: (0, [Item(("string", "ok"), parent="meta", parent_sub="k")])}).replace(b"ok", b"\xff\xfe"),
     "utf-8"),
    (b"\x02" + b"\x00\x05\x00" * 2 + b"\x00", "client listed twice"),
    (b"\x00\x01\x05\x02\x00\x01", "ends early"),  # delete set cut inside a range
])
def test_malformed_bytes(data, why):
    with pytest.raises(MalformedUpdate, match=why):
        read_shape(data)


def test_deeply_nested_any_is_malformed_not_recursion_error():
    nested = b"\x75\x01" * 10_000 + b"\x7e"  # [[[[...null...]]]]
    data = b"\x01\x01\x05\x00\x28\x01\x04meta\x01k\x01" + nested + b"\x00"
    with pytest.raises(MalformedUpdate, match="nested too deeply"):
        read_shape(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_malformed(data):
    try:
        read_shape(data)
    except MalformedUpdate:
        pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_updates_only_raise_malformed(data):
    u = mutate(_SAMPLE, data, max_edits=4)
    try:
        read_shape(u)
    except MalformedUpdate:
        pass


_SAMPLE = _sample_update()


def test_crafted_structs_decode():
    u = encode_update(
        {7: (3, [Item(("type", TYPE_MAP), parent="lines", parent_sub="L"),
                 Item(("any", [1, "two", 3.5]), parent=(7, 3)),
                 Item(("deleted", 4), origin=(7, 5)),
                 Item(("gc", 2))])},
        {9: [(0, 3), (10, 1)]},
    )
    assert read_shape(u) == UpdateShape(adds={7: (3, 13)}, deletes=[(9, 0, 3), (9, 10, 1)])


# -- state vectors ------------------------------------------------------------

clocks = st.integers(min_value=0, max_value=2**53)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.integers(min_value=0, max_value=2**64 - 1), clocks, max_size=20))
def test_state_vector_round_trip(sv):
    assert read_state_vector(write_state_vector(sv)) == sv


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 2**53 - 1), st.integers(1, 5)), min_size=0, max_size=6))
def test_state_vector_matches_pycrdt(writers):
    merged = Doc()
    expected: dict[int, int] = {}
    for client, n in writers:
        d = Doc(client_id=client)
        m = d.get("meta", type=Map)
        for i in range(n):
            m[str(i)] = i
        merged.apply_update(d.get_update())
        expected[client] = max(expected.get(client, 0), n)
    state = merged.get_state()
    assert read_state_vector(state) == expected
    assert write_state_vector(read_state_vector(state)) == state
    # pycrdt accepts what we write
    assert merged.get_update(write_state_vector(expected)) == merged.get_update(state)


def test_empty_state_vector():
    assert write_state_vector({}) == b"\x00"
    assert read_state_vector(b"\x00") == {}
    assert read_state_vector(Doc().get_state()) == {}


def test_truncated_state_vector_is_malformed():
    sv = write_state_vector({2**40: 300, 5: 1})
    for cut in range(1, len(sv)):
        with pytest.raises(MalformedUpdate):
            read_state_vector(sv[:cut])


def test_missing_dependencies():
    shape = UpdateShape(adds={1: (5, 8)}, deletes=[(2, 0, 3)])
    assert missing_dependencies(shape, {1: 8, 2: 3}) is None
    assert missing_dependencies(shape, {1: 7, 2: 3})
    assert missing_dependencies(shape, {1: 8, 2: 2})
    assert missing_dependencies(shape, {1: 8})
