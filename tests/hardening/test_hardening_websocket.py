"""Issue 16's websocket defects, each reproduced over real sockets: awareness that JavaScript
cannot parse or that is not an object, too much awareness on one connection, an update pycrdt
cannot diff, frames over the size limit, a failure inside the handler, expired tokens."""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import orjson
import pytest
from pycrdt import get_update

from harness import Livecart
from livecart.crdt.cart import new_line
from livecart.crdt.protocol import Kind, awareness_message, parse, update_message
from livecart.server.services import SERVICES
from livecart.server.sync.room import Room
from ws_attack import RawSocket, awareness_frame, client_frame, close_of
from yclient import YClient, eventually

ATTACKER_ID = 4_000_000_001


def strict_json(text: str) -> Any:
    """What JavaScript's JSON.parse accepts (Python's json also takes NaN and Infinity)."""
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def awareness_seen(client: YClient) -> list[tuple[int, str]]:
    """(clientId, state text) of every awareness entry the server sent this client."""
    from pycrdt import Decoder

    seen = []
    for frame in client.received:
        msg = parse(frame)
        if msg.kind is Kind.AWARENESS:
            decoder = Decoder(msg.payload)
            for _ in range(decoder.read_var_uint()):
                client_id = decoder.read_var_uint()
                decoder.read_var_uint()  # clock
                seen.append((client_id, decoder.read_var_string()))
    return seen


async def attacker(lc: Livecart, cart: str) -> aiohttp.ClientWebSocketResponse:
    return await lc.session.ws_connect(lc.ws_url(cart, lc.token("alice")))


class AdminFeed:
    """/ws/admin read in the background."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.events = ws, []
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            self.events.append(orjson.loads(msg.data))

    def presence(self, cart: str) -> list[list[dict[str, Any]]]:
        return [e["present"] for e in self.events if e["type"] == "cart.presence" and e["cartId"] == cart]


# -- 4. awareness states JavaScript cannot parse ------------------------------------------------

@pytest.mark.parametrize("state", ["NaN", "Infinity", "-Infinity", '{"x":NaN}', '{"x":[1,-Infinity]}',
                                   '{"x":1e400}', "", "{'x': 1}", b'{"x":"\xff"}'])
async def test_awareness_javascript_cannot_parse_closes_its_sender_and_is_never_relayed(
        lc: Livecart, state: str | bytes) -> None:
    cart = await lc.cart()
    honest = await lc.client(cart)
    await honest.set_presence({"user": {"name": "Ann"}})
    bad = await attacker(lc, cart)
    await bad.send_bytes(awareness_frame([(ATTACKER_ID, 1, state)]))
    code, reason = await close_of(bad)
    assert code == 4400 and "awareness" in reason, (code, reason)
    late = await lc.client(cart)  # what the server holds reaches a joiner too
    await eventually(lambda: honest.awareness.client_id in late.awareness.states, what="honest presence")
    for client in (honest, late):
        assert all(client_id != ATTACKER_ID for client_id, _ in awareness_seen(client))
        for _, text in awareness_seen(client):
            strict_json(text)  # every state relayed parses in JavaScript
    assert not honest.closed.is_set()


# -- 10. awareness states that are not objects ------------------------------------------------------

@pytest.mark.parametrize("state", ["5", "[1]", '"s"', "true"])
async def test_awareness_that_is_not_an_object_is_refused_and_presence_keeps_flowing(
        lc: Livecart, state: str) -> None:
    cart = await lc.cart()
    feed = AdminFeed(await lc.session.ws_connect(
        f"ws://{lc.config.host}:{lc.config.port}/ws/admin?token={lc.token('root', 'admin')}"))
    bad = await attacker(lc, cart)
    await bad.send_bytes(awareness_frame([(ATTACKER_ID, 1, state)]))
    honest = await lc.client(cart)
    await honest.set_presence({"user": {"name": "Ann", "role": "customer"}})
    await eventually(lambda: any(p and p[-1]["name"] == "Ann" for p in feed.presence(cart)),
                     what="cart.presence naming the honest client")
    code, reason = await close_of(bad)
    assert code == 4400 and "object" in reason, (code, reason)
    await honest.set_presence({"user": {"name": "Ann B", "role": "customer"}})
    await eventually(lambda: any(p and p[-1]["name"] == "Ann B" for p in feed.presence(cart)),
                     what="the next cart.presence")
    assert all(entry["clientId"] != ATTACKER_ID for present in feed.presence(cart) for entry in present)
    await feed.ws.close()


# -- 5. awareness per connection ---------------------------------------------------------------------

async def test_one_message_cannot_add_thousands_of_awareness_clients(lc: Livecart) -> None:
    cart = await lc.cart()
    honest = await lc.client(cart)
    bad = await attacker(lc, cart)
    await bad.send_bytes(awareness_frame([(i, 1, '{"user":{"name":"x"}}') for i in range(1, 5001)]))
    code, reason = await close_of(bad)
    assert code == 4400 and "awareness client" in reason, (code, reason)
    late = await lc.client(cart)
    await honest.set_presence({"user": {"name": "Ann"}})
    await eventually(lambda: honest.awareness.client_id in late.awareness.states, what="honest presence")
    assert set(late.awareness.states) - {late.awareness.client_id} == {honest.awareness.client_id}
    assert sum(len(frame) for frame in late.received) < 10_000  # a joiner is not sent megabytes


async def test_a_connection_owns_a_few_awareness_clients_and_loses_them_when_it_leaves(lc: Livecart) -> None:
    cart = await lc.cart()
    honest = await lc.client(cart)
    bad = await attacker(lc, cart)
    client_ids = range(ATTACKER_ID, ATTACKER_ID + 100)
    for client_id in client_ids:  # one new client id per message
        if bad.closed:
            break
        await bad.send_bytes(awareness_frame([(client_id, 1, '{"user":{"name":"x"}}')]))
    code, reason = await close_of(bad)
    assert code == 4400 and "awareness client" in reason, (code, reason)
    def relayed() -> set[int]:
        return {client_id for client_id, _ in awareness_seen(honest) if client_id in client_ids}
    await eventually(lambda: relayed() and not set(client_ids) & set(honest.awareness.states),
                     what="the few relayed before the limit, removed")
    assert len(relayed()) <= 8
    late = await lc.client(cart)  # ...and went with their connection
    assert not set(client_ids) & set(late.awareness.states)


async def test_awareness_state_over_the_size_bound_closes_4413(lc: Livecart) -> None:
    cart = await lc.cart()
    honest = await lc.client(cart)
    bad = await attacker(lc, cart)
    await bad.send_bytes(awareness_frame([(ATTACKER_ID, 1, json.dumps({"user": {"name": "x" * 100_000}}))]))
    code, reason = await close_of(bad)
    assert code == 4413 and "awareness" in reason, (code, reason)
    assert all(client_id != ATTACKER_ID for client_id, _ in awareness_seen(honest))


async def test_removals_of_unknown_awareness_clients_are_not_relayed(lc: Livecart) -> None:
    cart = await lc.cart()
    honest = await lc.client(cart)
    sender = await lc.client(cart)
    await sender.send_raw(awareness_frame([(i, 7, "null") for i in range(1, 2001)]))
    await sender.set_presence({"user": {"name": "Sam"}})
    await eventually(lambda: sender.awareness.client_id in honest.awareness.states, what="sender presence")
    assert {client_id for client_id, _ in awareness_seen(honest)} == {sender.awareness.client_id}
    room: Room = lc.app[SERVICES].rooms.rooms[cart]
    assert len(room.awareness.meta) <= 2  # the server's own and the sender's


async def test_a_tab_that_hides_and_shows_itself_again_and_again_stays_connected(lc: Livecart) -> None:
    cart = await lc.cart()
    tab = await lc.client(cart)
    other = await lc.client(cart)
    for i in range(30):  # the JS client sets null when hidden, its state again when shown
        await tab.set_presence({"user": {"name": f"T{i}"}, "focus": True})
        tab.awareness.set_local_state(None)
        await tab.send_raw(awareness_message(tab.awareness.encode_awareness_update([tab.awareness.client_id])))
    await tab.set_presence({"user": {"name": "last"}})
    await eventually(lambda: other.awareness.states.get(tab.awareness.client_id, {}).get("user", {}).get("name")
                     == "last", what="the last state")
    assert not tab.closed.is_set()


# -- 6. an update pycrdt cannot diff ------------------------------------------------------------------

# A line written by client 1601, and the same bytes with two bytes changed: it claims items the cart
# already has, so validation asks pycrdt for the new part, and pycrdt raises "Cannot diff updates".
LINE = bytes.fromhex("0103c10c002701056c696e6573026c31012800c10c0003736b7501"
                     "77034d55472800c10c0003717479017c3f80000000")
UNDIFFABLE = bytes.fromhex("0103c10c002701056c696e6573026c31012800c10c0003736b7501"
                           "77034d55472800c10c0003f27421017c3f80000000")


async def test_an_update_pycrdt_cannot_diff_closes_4400(lc: Livecart, caplog: pytest.LogCaptureFixture) -> None:
    from pycrdt import Doc, Map

    known = Doc()
    known.get("lines", type=Map)
    known.apply_update(LINE)
    with pytest.raises(ValueError, match="Cannot diff"):  # the input still makes pycrdt fail
        get_update(UNDIFFABLE, known.get_state())
    cart = await lc.cart()
    honest = await lc.client(cart)
    sender = await lc.client(cart)
    await sender.send_raw(update_message(LINE))
    await eventually(lambda: "l1" in honest.lines, what="the line relayed")
    with caplog.at_level(logging.WARNING, logger="livecart"):
        await sender.send_raw(update_message(UNDIFFABLE))
        code, reason = await sender.wait_closed(timeout=20)
    assert code == 4400 and "malformed update" in reason, (code, reason)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not honest.closed.is_set()
    status, body = await lc.call("GET", f"/api/carts/{cart}", lc.token("alice"))
    assert status == 200 and body["lines"]["l1"]["sku"] == "MUG"


async def test_a_failure_inside_the_handler_closes_1011_and_is_logged(
        lc: Livecart, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(self: Room, conn: Any, update: bytes) -> None:
        raise RuntimeError("injected fault")
    cart = await lc.cart()
    honest = await lc.client(cart)
    victim = await lc.client(cart)
    monkeypatch.setattr(Room, "client_update", broken)  # a bug of ours, as a fault injected
    with caplog.at_level(logging.ERROR, logger="livecart"):
        await victim.send_raw(update_message(LINE))
        code, reason = await victim.wait_closed(timeout=20)
    assert code == 1011 and reason, (code, reason)
    assert any("injected fault" in (r.exc_text or "") or (r.exc_info and "injected fault" in str(r.exc_info[1]))
               for r in caplog.records)
    assert not honest.closed.is_set()


# -- 9. frames over --max-message-bytes ------------------------------------------------------------

LIMIT = 64 * 1024


@pytest.mark.parametrize("size", [LIMIT + 1, 4 * LIMIT + 1, 40 * LIMIT])
async def test_a_frame_over_the_limit_closes_4413_whatever_its_size(lc: Livecart, size: int) -> None:
    lc.config.max_message_bytes = LIMIT
    cart = await lc.cart()
    honest = await lc.client(cart)
    big = await attacker(lc, cart)
    send = asyncio.ensure_future(big.send_bytes(update_message(b"\x00" * size)))
    code, reason = await close_of(big)
    send.cancel()
    assert code == 4413 and str(LIMIT) in reason, (code, reason)
    assert not honest.closed.is_set()


async def test_a_frame_of_exactly_the_limit_is_read(lc: Livecart) -> None:
    lc.config.max_message_bytes = LIMIT
    cart = await lc.cart()
    client = await lc.client(cart)
    frame = update_message(b"\x00" * (LIMIT - 4))
    frame = update_message(b"\x00" * (LIMIT - 4 - (len(frame) - LIMIT)))
    assert len(frame) == LIMIT
    await client.send_raw(frame)
    code, reason = await client.wait_closed(timeout=20)
    assert code == 4400, (code, reason)  # judged (and refused) as an update, not as a size


@pytest.mark.parametrize("shape", ["text", "fragments", "declared 2^40", "sent whole before reading"])
async def test_raw_frames_over_the_limit_close_4413(lc: Livecart, shape: str) -> None:
    lc.config.max_message_bytes = LIMIT
    cart = await lc.cart()
    raw = await RawSocket.open(lc.config.host, lc.config.port, f"/ws/carts/{cart}?token={lc.token('alice')}")
    if shape == "text":
        raw.send(client_frame(0x1, b"x" * (LIMIT + 1)))
    elif shape == "fragments":  # each part under the limit, the message over it
        part = b"\x00" * (LIMIT // 2)
        raw.send(client_frame(0x2, part, fin=False) + client_frame(0x0, part, fin=False) + client_frame(0x0, part))
    elif shape == "declared 2^40":
        raw.send(client_frame(0x2, b"\x00" * 1000, declared=1 << 40))
    else:  # a sender that reads nothing until its 16 MiB are out: the server must not reset it
        raw.send(client_frame(0x2, b"\x00" * (256 * LIMIT)))
        try:
            await asyncio.wait_for(raw.writer.drain(), 60)
        except ConnectionError:
            pass  # the close frame is lost with the connection: the assertion below says so
    code, reason = await raw.close_frame()
    raw.close()
    assert code == 4413 and str(LIMIT) in reason, (code, reason)


async def test_relays_skip_a_socket_that_is_being_refused(lc: Livecart, caplog: pytest.LogCaptureFixture) -> None:
    lc.config.max_message_bytes = LIMIT
    cart = await lc.cart()
    a, b = await lc.client(cart), await lc.client(cart)
    raw = await RawSocket.open(lc.config.host, lc.config.port, f"/ws/carts/{cart}?token={lc.token('alice')}")
    await eventually(lambda: len(lc.app[SERVICES].rooms.rooms[cart].conns) == 3, what="three sockets in the room")
    raw.send(client_frame(0x2, b"\x00" * 1000, declared=1 << 40))  # then it neither reads nor hangs up
    code, _ = await raw.close_frame()
    assert code == 4413
    with caplog.at_level(logging.WARNING, logger="livecart"):
        a.lines["l1"] = new_line("MUG", 1, "alice", "web", 0)  # relayed to every socket of the room
        await a.set_presence({"user": {"name": "Ann"}})
        await eventually(lambda: "l1" in b.lines and a.awareness.client_id in b.awareness.states, what="relays")
    raw.close()
    assert not a.closed.is_set() and not b.closed.is_set()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- tokens run out ------------------------------------------------------------------------------------

async def test_a_cart_socket_closes_4401_when_its_token_expires(lc: Livecart) -> None:
    cart = await lc.cart()
    short = await lc.client(cart, lc.token("alice", ttl_seconds=2))
    lasting = await lc.client(cart)
    code, reason = await short.wait_closed(timeout=30)
    assert code == 4401 and "expired" in reason, (code, reason)
    assert not lasting.closed.is_set()
    again = await lc.client(cart, lc.token("alice"))  # a fresh token opens it again
    assert not again.closed.is_set()


@pytest.mark.parametrize("path,role", [("/ws/admin", "admin"), ("/ws/me", "customer")])
async def test_a_feed_socket_closes_4401_when_its_token_expires(lc: Livecart, path: str, role: str) -> None:
    ws = await lc.session.ws_connect(
        f"ws://{lc.config.host}:{lc.config.port}{path}?token={lc.token('pat', role, ttl_seconds=2)}")
    code, reason = await close_of(ws, timeout=30)
    assert code == 4401 and "expired" in reason, (code, reason)


@pytest.mark.parametrize("path,role", [("/api/admin/events", "admin"), ("/api/me/events", "customer")])
async def test_an_event_stream_ends_when_its_token_expires(lc: Livecart, path: str, role: str) -> None:
    url = f"{lc.base}{path}?token={lc.token('pat', role, ttl_seconds=2)}"
    async with lc.session.get(url, timeout=aiohttp.ClientTimeout(total=60)) as response:
        assert response.status == 200
        await asyncio.wait_for(response.content.read(), 30)  # returns once the server ends the stream
