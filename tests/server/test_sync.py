"""Rooms over real websockets: relay, late joiners, awareness, rejection, close codes, durability."""
from __future__ import annotations

import asyncio
import base64
from dataclasses import replace
import os
import socket
import time

import jwt
import pytest
from pycrdt import Doc, Map

from harness import Livecart, make_config
from livecart.crdt.cart import CartDoc, new_line
from livecart.server.services import SERVICES
from livecart.crdt.protocol import Kind, awareness_message, parse, sync_step1, update_message
from yclient import eventually


def add_line(client, line_id: str, sku: str = "MUG", qty: int = 1) -> None:
    client.lines[line_id] = new_line(sku, qty, "alice", "web", int(time.time() * 1000))


async def test_two_clients_converge_and_late_joiner_gets_everything(lc: Livecart) -> None:
    cart = await lc.cart()
    a, b = await lc.client(cart), await lc.client(cart)
    add_line(a, "a1")
    add_line(b, "b1", "TEE", 3)
    a.lines["a1"]["qty"] = 2
    await eventually(lambda: a.snapshot() == b.snapshot() and len(a.lines) == 2, what="convergence")
    late = await lc.client(cart)
    await eventually(lambda: late.snapshot() == a.snapshot(), what="late joiner state")
    assert late.snapshot()["lines"]["a1"]["qty"] == 2


async def test_rejected_update_closes_only_that_client_and_is_neither_stored_nor_relayed(lc: Livecart) -> None:
    cart = await lc.cart()
    good, bad, watcher = await lc.client(cart), await lc.client(cart), await lc.client(cart)
    bad.server["status"] = "ordered"
    code, reason = await bad.wait_closed()
    assert code == 4400 and "server" in reason
    add_line(good, "g1")
    await eventually(lambda: "g1" in watcher.lines, what="relay after a rejection")
    assert watcher.snapshot()["server"]["status"] == "open"
    status, body = await lc.call("GET", f"/api/carts/{cart}", lc.token("alice"))
    assert status == 200 and body["status"] == "open" and list(body["lines"]) == ["g1"]
    assert not good.closed.is_set() and not watcher.closed.is_set()


@pytest.mark.parametrize("edit, rule", [
    (lambda c: add_line(c, "x", "NOPE"), "unknown sku"),
    (lambda c: add_line(c, "x", "MUG", 6), "qty"),
    (lambda c: c.doc.get("evil", type=Map).__setitem__("k", 1), "unknown root"),
    (lambda c: c.meta.__setitem__("colour", "red"), "unknown field"),
])
async def test_each_schema_rule_closes_with_4400_naming_it(lc: Livecart, edit, rule: str) -> None:
    cart = await lc.cart()
    client = await lc.client(cart)
    edit(client)
    code, reason = await client.wait_closed()
    assert code == 4400 and rule in reason


async def test_awareness_is_relayed_and_removed_when_a_client_leaves(lc: Livecart) -> None:
    cart = await lc.cart()
    a, b = await lc.client(cart), await lc.client(cart)
    await a.set_presence({"user": {"name": "Alice"}, "focus": True})
    a_id = a.awareness.client_id
    await eventually(lambda: b.awareness.states.get(a_id, {}).get("focus") is True, what="presence")
    # the sender hears its own awareness back (keeps the stock client's 30 s watchdog fed)
    await eventually(lambda: any(m[0] == 1 for m in a.received), what="awareness echo")
    await a.close()
    await eventually(lambda: a_id not in b.awareness.states, what="presence removed")


async def test_no_token_bad_tokens_and_wrong_owner_are_refused(lc: Livecart, session) -> None:
    from yclient import YClient

    cart = await lc.cart("alice")
    expired = lc.token("alice", ttl_seconds=-10)
    other_key = jwt.encode({"sub": "alice", "role": "customer", "exp": time.time() + 60}, "k" * 40, "HS256")
    alg_none = jwt.encode({"sub": "alice", "role": "customer", "exp": time.time() + 60}, None, "none")
    cases = [(lc.ws_url(cart, None), 4401), (lc.ws_url(cart, expired), 4401),
             (lc.ws_url(cart, other_key), 4401), (lc.ws_url(cart, alg_none), 4401),
             (lc.ws_url(cart, lc.token("bob")), 4403), (lc.ws_url("c-nope", lc.token("alice")), 4404),
             (lc.ws_url(cart, lc.token("root", "admin")), None)]
    for url, expected in cases:
        client = await YClient(session, url).connect()
        if expected is None:
            await client.wait_synced()
            await client.close()
        else:
            code, _ = await client.wait_closed()
            assert code == expected, url


async def test_oversized_frame_closes_4413(lc: Livecart) -> None:
    lc.config.max_message_bytes = 10_000
    cart = await lc.cart()
    client = await lc.client(cart)
    await client.send_raw(update_message(b"\x00" * 20_000))
    code, _ = await client.wait_closed()
    assert code == 4413


async def test_flooding_closes_4429(lc: Livecart) -> None:
    cart = await lc.cart()
    client = await lc.client(cart)
    for _ in range(lc.config.max_messages_per_second + 50):
        await client.send_raw(sync_step1(client.doc.get_state()))
    code, _ = await client.wait_closed()
    assert code == 4429


async def test_garbage_frame_closes_4400(lc: Livecart) -> None:
    cart = await lc.cart()
    client = await lc.client(cart)
    await client.send_raw(b"\x07\x01\x02")
    code, reason = await client.wait_closed()
    assert code == 4400 and "y-protocols" in reason


@pytest.mark.parametrize("fsync", ["everysec", "always"])
async def test_edits_survive_a_restart_on_the_same_data_dir(tmp_path, session, fsync: str) -> None:
    config = make_config(tmp_path, compact_every=3, fsync=fsync)
    first = await Livecart(config, session).start()
    await first.product("MUG", maxQty=5)
    cart = await first.cart()
    writer, reader = await first.client(cart), await first.client(cart)
    for i in range(7):  # crosses the compaction threshold twice
        add_line(writer, f"l{i}")
    await eventually(lambda: len(reader.lines) == 7, what="relay")
    seen = reader.snapshot()["lines"]
    await first.stop()  # abrupt enough: rooms are dropped with the app
    second = await Livecart(config, session).start()
    fresh = await second.client(cart)
    await eventually(lambda: fresh.snapshot()["lines"] == seen, what="state after restart")
    await eventually(lambda: set(fresh.snapshot()["server"]["holds"]) == set(seen), what="every line has a hold")
    await second.stop()


async def test_what_a_crash_would_leave_loads_after_an_edit_stock_has_nothing_to_answer(lc: Livecart) -> None:
    cart = await lc.cart()
    writer, reader = await lc.client(cart), await lc.client(cart)
    add_line(writer, "l1")
    writer.meta["note"] = "ring twice"  # touches no line: no hold to decide, no price to change
    await eventually(lambda: reader.snapshot()["meta"].get("note") == "ring twice", what="relay")
    log = await lc.app[SERVICES].store.load(cart)  # uncompacted, as a SIGKILL would leave it
    assert log.updates and b"" not in log.updates
    assert CartDoc(log.snapshot, log.updates).to_dict()["meta"]["note"] == "ring twice"


async def test_room_unloads_after_the_grace_period_and_reloads_from_the_store(lc: Livecart) -> None:
    cart = await lc.cart()
    client = await lc.client(cart)
    add_line(client, "l1")
    assert cart in lc.app[SERVICES].rooms.rooms
    await client.close()
    await eventually(lambda: cart not in lc.app[SERVICES].rooms.rooms, what="unload")
    again = await lc.client(cart)
    assert again.snapshot()["lines"]["l1"]["sku"] == "MUG"


async def test_update_with_missing_dependencies_is_rejected(lc: Livecart) -> None:
    cart = await lc.cart()
    client = await lc.client(cart)
    other = Doc()
    lines = other.get("lines", type=Map)
    updates: list[bytes] = []
    sub = other.observe(lambda e: updates.append(e.update))
    lines["x"] = new_line("MUG", 1, "alice", "web", 1)
    lines["x"]["qty"] = 2
    del sub
    await client.send_raw(update_message(updates[1]))  # depends on updates[0], never sent
    code, reason = await client.wait_closed()
    assert code == 4400 and "missing dependencies" in reason
    status, body = await lc.call("GET", f"/api/carts/{cart}", lc.token("alice"))
    assert body["lines"] == {}


async def test_awareness_garbage_is_rejected(lc: Livecart) -> None:
    cart = await lc.cart()
    client = await lc.client(cart)
    await client.send_raw(awareness_message(b"\x05\x01"))
    code, _ = await client.wait_closed()
    assert code == 4400


async def test_awareness_echoes_are_not_rebroadcast_and_leaving_removes_only_your_own(lc: Livecart) -> None:
    cart = await lc.cart()
    a, b, c = await lc.client(cart), await lc.client(cart), await lc.client(cart)
    await a.set_presence({"user": {"name": "A"}})
    await b.set_presence({"user": {"name": "B"}})
    await eventually(lambda: {a.awareness.client_id, b.awareness.client_id} <= set(c.awareness.states),
                     what="presence everywhere")
    frames = len(c.received)
    # the stock client re-sends every state it applies: an echo of A's state (same clock) from B
    echo = b.awareness.encode_awareness_update([a.awareness.client_id])
    for _ in range(5):
        await b.send_raw(awareness_message(echo))
    # B's frames are handled in order: once C has B's next edit, the echoes were handled before it
    b.meta["note"] = "after the echoes"
    await eventually(lambda: c.meta.get("note") == "after the echoes", what="B's edit after the echoes")
    assert [parse(m).kind for m in c.received[frames:]] == [Kind.UPDATE]  # the edit; no echo relayed
    await b.close()  # B echoed A's state, but leaving takes only B's presence away
    await eventually(lambda: b.awareness.client_id not in c.awareness.states, what="B gone")
    a.meta["note"] = "A is still here"  # sent after B's leaving was handled: C gets it after any removal
    await eventually(lambda: c.meta.get("note") == "A is still here", what="A's edit after B left")
    assert a.awareness.client_id in c.awareness.states


async def test_pricing_changes_are_small_whatever_the_cart_size(lc: Livecart) -> None:
    await lc.call("PUT", "/api/stock/TEE", lc.token("root", "admin"), json={"onHand": 1000})
    cart = await lc.cart()
    a, watcher = await lc.client(cart), await lc.client(cart)
    with a.doc.transaction():
        for i in range(40):
            add_line(a, f"l{i}", "TEE", 1)
    await eventually(lambda: len(watcher.snapshot()["server"]["pricing"]["lines"]) == 40, what="priced")
    before = len(watcher.received)
    a.lines["l7"]["qty"] = 2
    await eventually(lambda: watcher.snapshot()["server"]["pricing"]["lines"]["l7"]["qty"] == 2, what="repriced")
    await asyncio.sleep(0.1)
    sizes = [len(m) for m in watcher.received[before:]]
    assert max(sizes) < 400, sizes  # one line entry and the totals, not the 40-line pricing object


async def _stalled_socket(lc: Livecart, cart_id: str) -> socket.socket:
    """A websocket client that completes the handshake, then never reads (a tiny receive window)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, (lc.config.host, lc.config.port))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(sock, (
        f"GET /ws/carts/{cart_id}?token={lc.token('alice')} HTTP/1.1\r\nHost: {lc.config.host}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 1)  # byte by byte: leave the frames after it unread
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def test_a_reader_that_stops_reading_is_cut_off_and_the_room_carries_on(lc: Livecart) -> None:
    lc.config.send_buffer_bytes = 256 * 1024
    lc.config.max_messages_per_second = 10_000
    lc.config.limits = replace(lc.config.limits, max_note_chars=10_000)
    cart = await lc.cart()
    writer, reader = await lc.client(cart), await lc.client(cart)
    room = lc.app[SERVICES].rooms.rooms[cart]
    readers = set(room.conns)
    stalled = await _stalled_socket(lc, cart)
    await eventually(lambda: len(room.conns) == 3, what="three sockets in the room")
    [stalled_conn] = room.conns - readers
    big = "x" * 8000
    for i in range(2000):  # up to 16 MB: past the kernel's socket buffers and the budget
        writer.meta["note"] = f"{i}:{big}"
        await asyncio.sleep(0.002 if i % 4 == 0 else 0)
        if stalled_conn not in room.conns:
            break
    await eventually(lambda: stalled_conn not in room.conns, what="the stalled socket cut off")
    assert stalled_conn.closing is not None and stalled_conn.transport.is_closing()
    await eventually(lambda: str(reader.meta.get("note", "")) == str(writer.meta["note"]), what="reader caught up")
    assert room.conns == readers and writer.close_code is None and reader.close_code is None
    stalled.close()
