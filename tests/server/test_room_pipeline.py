"""The edit pipeline of a room without sockets (issue 17): validate → extensions → decide → store → relay.

Real parts: a SQLite store and the stock actor in a temp dir (or a real redis-server deciding stock
asynchronously), the in-process bus, the catalog cache.
Each connection writes to a transport that keeps the frames it was given (the kernel's side of a
socket is what is left out), so a test reads exactly what each client would receive.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
from aiohttp import WSMessage, WSMsgType, web
from pycrdt import Array, Doc, Map

from livecart.crdt import CartDoc, Product, server_root
from livecart.crdt.cart import new_line, plain
from livecart.crdt.protocol import Kind, awareness_message, parse, update_message
from livecart.server import auth
from livecart.server.bus import open_bus
from livecart.server.catalog import CatalogCache
from livecart.server.config import Config
from livecart.server.hooks import Edit, Extension, Hooks
from livecart.server.stock import open_stock
from livecart.server.store import Store, open_store
from livecart.server.sync.connection import GONE, REJECTED, Close, Connection
from livecart.server.sync.registry import Rooms
from livecart.server.sync.room import Answer, Room, Unanswered
from livecart.server.sync.socket import serve_connection

SECRET = "pipeline-secret-" + "x" * 32
CART = "c-pipeline"


class Frames:
    """A transport that keeps what it is given: the frames a client would read."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.frames.append(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        pass

    def updates(self) -> list[bytes]:
        """The document updates among the frames (each frame: 0x82, a length, a y-protocols message)."""
        out = []
        for frame in self.frames:
            n = frame[1]
            start = 2 if n < 126 else (4 if n == 126 else 10)
            msg = parse(frame[start:])
            if msg.kind in (Kind.UPDATE, Kind.SYNC_STEP2):
                out.append(msg.payload)
        return out


class Inbox:
    """The messages a client sends, as the socket's read loop iterates them, and the close it gets."""

    def __init__(self, *messages: bytes) -> None:
        self.messages = [WSMessage(WSMsgType.BINARY, m, None) for m in messages]
        self.closed: tuple[int, bytes] | None = None

    async def __aiter__(self) -> AsyncIterator[WSMessage]:
        for message in self.messages:
            yield message

    async def close(self, *, code: int, message: bytes = b"") -> bool:
        self.closed = (code, message)
        return True


class Recorder(Extension):
    """Keeps every hook call, with the values the room decided."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    def on_load(self, room: Room) -> None:
        self.calls.append(("load", room.id, None))

    def on_unload(self, room: Room) -> None:
        self.calls.append(("unload", room.id, None))

    def on_edit(self, room: Room, edit: Edit) -> None:
        self.calls.append(("edit", room.id, edit))

    def on_presence(self, room: Room) -> None:
        self.calls.append(("presence", room.id, room.presence.who()))

    def edits(self) -> list[Edit]:
        return [edit for kind, _, edit in self.calls if kind == "edit"]


class Client:
    """A Yjs client: its doc, and the updates its edits make."""

    def __init__(self, room: Room, sub: str, role: str = "customer") -> None:
        self.doc: Doc = Doc()
        self.doc.apply_update(room.cart.diff())
        self.made: list[bytes] = []
        self._sub = self.doc.observe(lambda event: self.made.append(event.update))
        self.frames = Frames()
        self.conn = Connection(web.WebSocketResponse(), self.frames, auth.Identity(sub, role),  # type: ignore[arg-type]
                               room.config, room.id)
        room.conns.add(self.conn)

    def edit(self, change: Callable[[Doc], None]) -> bytes:
        with self.doc.transaction():
            change(self.doc)
        return update_message(self.made.pop())

    def lines(self) -> Map:
        return self.doc.get("lines", type=Map)


class Floor:
    """A room's collaborators, real, in a temp dir (`store`: a redis:// URL for Redis' store and stock)."""

    def __init__(self, tmp: Path, store: str = "sqlite") -> None:
        self.config = Config(jwt_secret=SECRET, data_dir=tmp, store=store, room_grace_seconds=0.05)
        self.store: Store = open_store(store, tmp)
        self.bus = open_bus("memory")
        self.catalog = CatalogCache(self.store, self.bus)
        self.stock = open_stock(self.config, self.store)  # the embedded actor on SQLite; Redis' Lua scripts on Redis
        self.recorder = Recorder()
        self.rooms = Rooms(self.config, self.store, self.catalog, self.stock, self.bus, Hooks([self.recorder]),
                           shop_codes=lambda code: {"percentOff": 10} if code == "TEN" else None)

    async def start(self) -> None:
        await self.store.open()
        await self.catalog.load()
        await self.bus.start()
        await self.stock.start()
        for sku, price in (("MUG", 1200), ("TEE", 2500)):
            await self.catalog.put(Product(sku, sku.title(), price))
            await self.stock.set_on_hand(sku, 5)
        await self.store.append(CART, server_root.init(CartDoc()))

    async def stop(self) -> None:
        await self.rooms.close()
        await self.stock.stop()
        await self.bus.stop()
        await self.store.close()

    async def stored(self) -> CartDoc:
        """The cart as the store has it (what a reload, or another process, reads)."""
        log = await self.store.load(CART)
        return CartDoc(log.snapshot, log.updates)


@pytest.fixture
async def floor(tmp_path: Path) -> AsyncIterator[Floor]:
    f = Floor(tmp_path)
    await f.start()
    try:
        yield f
    finally:
        await f.stop()


@pytest.fixture
async def redis_floor(tmp_path: Path, redis_server: Any) -> AsyncIterator[Floor]:
    """Stock decided by a real redis-server: over the network, so never at once."""
    f = Floor(tmp_path, redis_server.url)
    await f.start()
    try:
        yield f
    finally:
        await f.stop()


def add(line_id: str, sku: str, qty: int) -> Callable[[Doc], None]:
    return lambda doc: doc.get("lines", type=Map).__setitem__(line_id, new_line(sku, qty, "ann", "web", 1))


def server_of(cart: CartDoc) -> dict[str, Any]:
    with cart.doc.transaction():
        return plain(cart.server)


def decisions(room: Room) -> list[Answer | Unanswered]:
    """Keeps what `room.decide` decides for each edit from now on."""
    seen: list[Answer | Unanswered] = []
    decide = room.decide

    def spy(accepted: Any) -> Answer | Unanswered:
        seen.append(decide(accepted))
        return seen[-1]

    room.decide = spy  # type: ignore[method-assign]
    return seen


async def settled(room: Room) -> None:
    """Waits (bounded) until the holds and prices the room decided in the background are written."""
    for _ in range(600):
        if not room.busy():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the room is still busy after 30 s")


async def test_an_accepted_edit_is_stored_answered_and_relayed(floor: Floor) -> None:
    room = await floor.rooms.get(CART)
    ann, bob = Client(room, "ann"), Client(room, "bob")
    edit = ann.edit(add("l1", "MUG", 2))
    await room.receive(ann.conn, edit)

    stored = await floor.stored()
    assert stored.to_dict()["lines"]["l1"]["qty"] == 2  # stored before anyone was told
    assert stored.to_dict()["holds"]["l1"]["status"] == "held"  # with the server's answer, in the same row
    assert server_of(room.cart)["pricing"]["total"] == 2 * 1200
    # bob gets the edit and its answer as one update; ann, who has the edit, the answer alone
    assert len(bob.frames.updates()) == 1 and len(ann.frames.updates()) == 1
    for client in (ann, bob):
        client.doc.apply_update(client.frames.updates()[0])
        assert plain(client.doc.get("server", type=Map))["holds"]["l1"]["qty"] == 2
        assert client.lines()["l1"]["qty"] == 2
    assert ann.frames.updates()[0] != bob.frames.updates()[0]


async def test_a_rejected_edit_closes_only_its_sender_and_changes_nothing(floor: Floor) -> None:
    room = await floor.rooms.get(CART)
    ann, bob = Client(room, "ann"), Client(room, "bob")
    await room.receive(ann.conn, ann.edit(add("l1", "MUG", 1)))
    before, seq, heard = room.cart.to_dict(), room.catchup.last_seq, len(floor.recorder.edits())
    frames = len(bob.frames.frames), len(ann.frames.frames)

    with pytest.raises(Close) as closed:
        await room.receive(bob.conn, bob.edit(add("l2", "NOPE", 1)))  # a SKU the shop does not sell
    assert closed.value.code == REJECTED and "unknown sku" in closed.value.reason
    with pytest.raises(Close) as closed:
        await room.receive(bob.conn, bob.edit(lambda doc: doc.get("server", type=Map).__setitem__("status", "ordered")))
    assert closed.value.code == REJECTED

    assert room.cart.to_dict() == before and room.catchup.last_seq == seq
    assert (await floor.stored()).to_dict() == before
    assert (len(bob.frames.frames), len(ann.frames.frames)) == frames  # nobody was sent anything
    assert len(floor.recorder.edits()) == heard  # the extensions heard of no edit
    assert ann.conn.closing is None and bob.conn.closing is None  # the room closes no one itself: the read loop does

    # Over the read loop: the sender of a refused edit is closed with 4400, the others go on.
    carol = Client(room, "carol")
    inbox = Inbox(carol.edit(add("l3", "MUG", 999)))
    carol.conn.ws = inbox  # type: ignore[assignment]
    await serve_connection(room, carol.conn, floor.config)
    await carol.conn.finish()
    assert inbox.closed is not None and inbox.closed[0] == REJECTED and b"qty must be an integer" in inbox.closed[1]
    assert ann.conn.closing is None and bob.conn.closing is None and room.cart.to_dict() == before
    await room.receive(ann.conn, ann.edit(lambda doc: doc.get("lines", type=Map)["l1"].__setitem__("qty", 2)))
    assert room.cart.to_dict()["lines"]["l1"]["qty"] == 2
    assert set(await floor.stock.holds_of(CART)) == {"l1"}  # no hold for the refused line


async def test_the_extensions_hear_each_edit_with_what_was_decided(floor: Floor) -> None:
    room = await floor.rooms.get(CART)
    assert ("load", CART, None) in floor.recorder.calls
    ann = Client(room, "ann", role="assistant")
    await room.receive(ann.conn, ann.edit(add("l1", "TEE", 3)))
    await room.receive(ann.conn, ann.edit(lambda doc: doc.get("lines", type=Map)["l1"].__setitem__("qty", 4)))
    await room.receive(ann.conn, ann.edit(lambda doc: doc.get("lines", type=Map).pop("l1")))
    added, changed, removed = floor.recorder.edits()
    assert (added.who.sub, added.who.role) == ("ann", "assistant")
    assert (added.added, added.removed, dict(added.wants)) == ({"l1"}, set(), {"l1": ("TEE", 3)})
    assert (changed.added, changed.removed, dict(changed.wants)) == (set(), set(), {"l1": ("TEE", 4)})
    assert (removed.added, removed.removed, dict(removed.wants)) == (set(), {"l1"}, {"l1": None})


async def test_hold_wants_reach_the_stock_authority(floor: Floor) -> None:
    room = await floor.rooms.get(CART)
    ann, bob = Client(room, "ann"), Client(room, "bob")
    await room.receive(ann.conn, ann.edit(add("l1", "MUG", 3)))
    await room.receive(bob.conn, bob.edit(add("l2", "MUG", 4)))  # 2 left: partly held
    await settled(room)
    holds = await floor.stock.holds_of(CART)
    assert (holds["l1"].qty, holds["l2"].qty) == (3, 2)
    assert (await floor.stock.levels(["MUG"]))["MUG"].available == 0
    shown = server_of(room.cart)["holds"]
    assert (shown["l1"]["status"], shown["l2"]["status"], shown["l2"]["qty"]) == ("held", "partial", 2)
    await room.receive(ann.conn, ann.edit(lambda doc: doc.get("lines", type=Map).pop("l1")))
    await settled(room)
    assert "l1" not in await floor.stock.holds_of(CART) and (await floor.stock.levels(["MUG"]))["MUG"].available == 3
    assert "l1" not in server_of(room.cart)["holds"]
    assert server_of(await floor.stored()) == server_of(room.cart)


async def test_an_edit_of_the_note_is_stored_and_relayed_unanswered(floor: Floor) -> None:
    room = await floor.rooms.get(CART)
    ann, bob = Client(room, "ann"), Client(room, "bob")
    before = server_of(room.cart)
    edit = ann.edit(lambda doc: doc.get("meta", type=Map).__setitem__("note", "gift wrap"))
    await room.receive(ann.conn, edit)
    assert (await floor.stored()).to_dict()["meta"]["note"] == "gift wrap"
    assert bob.frames.updates() and ann.frames.updates() == []  # the sender has it; no answer to send
    assert server_of(room.cart) == before


async def test_a_typed_code_is_priced_and_the_price_reaches_everyone(floor: Floor) -> None:
    room = await floor.rooms.get(CART)
    ann, bob = Client(room, "ann"), Client(room, "bob")
    await room.receive(ann.conn, ann.edit(add("l1", "TEE", 2)))
    await room.receive(ann.conn, ann.edit(lambda doc: doc.get("meta", type=Map).__setitem__("discountCodes", Array(["TEN"]))))
    assert server_of(room.cart)["pricing"]["total"] == 5000 - 500
    assert server_of(await floor.stored())["pricing"]["total"] == 4500
    for update in bob.frames.updates():
        bob.doc.apply_update(update)
    assert plain(bob.doc.get("server", type=Map))["pricing"]["total"] == 4500


async def test_commit_writes_a_server_change_stored_and_relayed_to_all(floor: Floor) -> None:
    room = await floor.rooms.get(CART)
    ann, bob = Client(room, "ann"), Client(room, "bob")
    await room.receive(ann.conn, ann.edit(add("l1", "MUG", 1)))
    sent = len(ann.frames.updates()), len(bob.frames.updates())
    await room.commit(server_root.offer(room.cart, "STAFF", {"amountOff": 200}))
    await room.commit_pricing()
    assert server_of(room.cart)["pricing"]["total"] == 1000
    assert server_of(await floor.stored())["pricing"]["total"] == 1000
    assert (len(ann.frames.updates()), len(bob.frames.updates())) == (sent[0] + 2, sent[1] + 2)
    await room.commit_pricing()  # nothing changed: nothing written, nothing sent
    assert (len(ann.frames.updates()), len(bob.frames.updates())) == (sent[0] + 2, sent[1] + 2)


async def test_a_merged_cart_takes_no_edit(floor: Floor) -> None:
    room = await floor.rooms.get(CART)
    ann = Client(room, "ann")
    await room.commit(server_root.mark_merged(room.cart, "c-other"))
    with pytest.raises(Close) as closed:
        await room.receive(ann.conn, ann.edit(add("l1", "MUG", 1)))
    assert (closed.value.code, closed.value.reason) == (GONE, "cart merged into c-other")
    assert floor.recorder.edits() == [] and await floor.stock.holds_of(CART) == {}


async def test_presence_and_unload_reach_the_extensions(floor: Floor) -> None:
    room = await floor.rooms.get(CART)
    ann = Client(room, "ann")
    state = Doc()
    from pycrdt import Awareness

    awareness = Awareness(state)
    awareness.set_local_state({"user": {"name": "Ann", "role": "customer", "channel": "web"}})
    await room.receive(ann.conn, awareness_message(awareness.encode_awareness_update([state.client_id])))
    presence = [value for kind, _, value in floor.recorder.calls if kind == "presence"]
    assert presence and presence[-1][0]["name"] == "Ann"
    room.leave(ann.conn)  # her presence goes with her socket
    assert [value for kind, _, value in floor.recorder.calls if kind == "presence"][-1] == []
    for _ in range(600):
        if ("unload", CART, None) in floor.recorder.calls:
            break
        await asyncio.sleep(0.05)
    assert ("unload", CART, None) in floor.recorder.calls and CART not in floor.rooms.rooms


class Failing(Extension):
    """An extension with a bug in its edit hook."""

    def on_edit(self, room: Room, edit: Edit) -> None:
        raise RuntimeError("a bug in an extension")


async def test_an_extension_that_fails_leaves_the_edit_applied_stored_and_relayed(
        floor: Floor, caplog: pytest.LogCaptureFixture) -> None:
    floor.rooms.hooks.extensions.insert(0, Failing())  # before the recorder: the ones after it still hear
    room = await floor.rooms.get(CART)
    ann, bob = Client(room, "ann"), Client(room, "bob")
    with caplog.at_level(logging.ERROR, logger="livecart.hooks"):
        await room.receive(ann.conn, ann.edit(add("l1", "MUG", 2)))

    assert "Failing.on_edit failed" in caplog.text and "a bug in an extension" in caplog.text
    assert room.cart.to_dict()["lines"]["l1"]["qty"] == 2  # applied
    stored = (await floor.stored()).to_dict()
    assert stored["lines"]["l1"]["qty"] == 2 and stored["holds"]["l1"]["status"] == "held"  # stored, answered
    assert len(bob.frames.updates()) == 1 and len(ann.frames.updates()) == 1  # relayed, and answered
    bob.doc.apply_update(bob.frames.updates()[0])
    assert bob.lines()["l1"]["qty"] == 2
    assert [sorted(edit.added) for edit in floor.recorder.edits()] == [["l1"]]  # the next extension heard it
    assert ann.conn.closing is None and bob.conn.closing is None


async def test_with_a_remote_stock_authority_the_edit_goes_first_and_its_holds_follow(redis_floor: Floor) -> None:
    floor = redis_floor
    room = await floor.rooms.get(CART)
    await settled(room)  # the load's audit of the holds
    decided = decisions(room)
    ann, bob = Client(room, "ann"), Client(room, "bob")
    await room.receive(ann.conn, ann.edit(add("l1", "MUG", 2)))

    assert decided == [Unanswered.IN_BACKGROUND]  # Redis decides over the network: not at once
    # The edit is stored and relayed alone, unanswered: bob gets it, ann (who has it) nothing yet.
    assert (await floor.stored()).to_dict()["lines"]["l1"]["qty"] == 2
    assert len(bob.frames.updates()) == 1 and ann.frames.updates() == []
    bob.doc.apply_update(bob.frames.updates()[0])
    assert bob.lines()["l1"]["qty"] == 2 and "l1" not in plain(bob.doc.get("server", type=Map)).get("holds", {})

    await settled(room)  # then the holds follow, written as the room's own update, to everyone
    assert (await floor.stock.holds_of(CART))["l1"].qty == 2
    assert server_of(room.cart)["holds"]["l1"]["status"] == "held"
    assert server_of(room.cart)["pricing"]["total"] == 2 * 1200
    assert server_of(await floor.stored()) == server_of(room.cart)
    for client in (ann, bob):
        for update in client.frames.updates():
            client.doc.apply_update(update)
        assert plain(client.doc.get("server", type=Map))["holds"]["l1"]["qty"] == 2

    # A typed code asks nothing of stock: it is priced at once, answered with the edit.
    await room.receive(ann.conn, ann.edit(lambda doc: doc.get("meta", type=Map).__setitem__("discountCodes", Array(["TEN"]))))
    assert isinstance(decided[-1], Answer)
    assert server_of(room.cart)["pricing"]["total"] == server_of(await floor.stored())["pricing"]["total"] == 2160


async def test_an_edit_waits_behind_a_reconcile_in_flight(floor: Floor) -> None:
    """Even an authority that decides at once leaves an edit to the background while holds are
    being reconciled: deciding it first would overtake them."""
    room = await floor.rooms.get(CART)
    await settled(room)
    decided = decisions(room)
    ann, bob = Client(room, "ann"), Client(room, "bob")
    await room.receive(ann.conn, ann.edit(add("l1", "MUG", 1)))
    assert isinstance(decided[-1], Answer)  # nothing in flight: decided at once, answered with the edit

    room.holds.want({"l1"})  # as a merge or an order does: a reconcile in flight
    await room.receive(bob.conn, bob.edit(add("l2", "TEE", 3)))
    assert decided[-1] is Unanswered.IN_BACKGROUND
    await settled(room)
    holds = await floor.stock.holds_of(CART)
    assert (holds["l1"].qty, holds["l2"].qty) == (1, 3)
    assert server_of(room.cart)["holds"]["l2"]["status"] == "held"
    assert server_of(await floor.stored()) == server_of(room.cart)

    room.holds.want({"l2"})  # a typed code behind a reconcile: its price follows in the background
    await room.receive(ann.conn, ann.edit(lambda doc: doc.get("meta", type=Map).__setitem__("discountCodes", Array(["TEN"]))))
    assert decided[-1] is Unanswered.IN_BACKGROUND
    await settled(room)
    assert server_of(room.cart)["pricing"]["total"] == server_of(await floor.stored())["pricing"]["total"] == (1200 + 3 * 2500) * 9 // 10
