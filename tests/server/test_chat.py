"""Chat on the cart over real websockets and HTTP: messages sync, persist and reach the shop floor with
their cart; a forged author, an edit or a delete closes that socket alone (4400); a flood 4429; a merge
moves the conversation and a message to the merged cart names the new one (409)."""
from __future__ import annotations

import asyncio
from typing import Any

import orjson
from pycrdt import Array, Map

from harness import Livecart
from yclient import YClient, eventually


class Feed:
    """An admin's /ws/admin socket, keeping every event."""

    def __init__(self, lc: Livecart) -> None:
        self.lc, self.events = lc, []

    async def start(self) -> "Feed":
        token = self.lc.token("root", "admin")
        self.ws = await self.lc.session.ws_connect(
            f"ws://{self.lc.config.host}:{self.lc.config.port}/ws/admin?token={token}")
        self.task = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        async for msg in self.ws:
            self.events.append(orjson.loads(msg.data))

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]

    async def stop(self) -> None:
        await self.ws.close()
        self.task.cancel()


def chat(client: YClient) -> Array:
    return client.doc.get("chat", type=Array)


def say(client: YClient, text: str, sub: str, role: str = "customer", msg_id: str | None = None) -> None:
    log = chat(client)
    log.append(Map({"id": msg_id or f"{sub}-{len(log)}", "from": sub, "role": role, "text": text,
                    "at": 1_700_000_000_000 + len(log)}))


def texts(client: YClient) -> list[str]:
    with client.doc.transaction():
        return [str(m["text"]) for m in chat(client)]


async def test_a_message_syncs_persists_and_reaches_the_shop_floor(lc: Livecart) -> None:
    """No staff has the cart open: the shopper's message still reaches the shop floor, with its cart;
    staff answer over HTTP; both are in the document after the room was unloaded and loaded again."""
    shop = await Feed(lc).start()
    cart = await lc.cart("alice")
    shopper = await lc.client(cart, lc.token("alice"))
    say(shopper, "Does the mug come in blue?", "alice")
    await eventually(lambda: shop.of("chat.message"), what="the shop floor hears the message")
    event = shop.of("chat.message")[0]
    assert {k: event[k] for k in ("cartId", "from", "role", "text", "unread")} == {
        "cartId": cart, "from": "alice", "role": "customer", "text": "Does the mug come in blue?", "unread": 1}
    status, sent = await lc.call("POST", f"/api/carts/{cart}/messages", lc.token("root", "admin"),
                                 json={"text": "It does, from Monday."})
    assert status == 201 and sent["from"] == "root" and sent["role"] == "admin", sent
    await eventually(lambda: texts(shopper) == ["Does the mug come in blue?", "It does, from Monday."],
                     what="the shopper sees the answer")
    await eventually(lambda: len(shop.of("chat.message")) == 2, what="the answer on the shop floor")
    assert shop.of("chat.message")[1]["unread"] == 0
    await shopper.close()
    await asyncio.sleep(lc.config.room_grace_seconds * 3)  # the room unloads; the chat is in the store
    again = await lc.client(cart, lc.token("alice"))
    assert texts(again) == ["Does the mug come in blue?", "It does, from Monday."]
    status, body = await lc.call("GET", f"/api/carts/{cart}", lc.token("alice"))
    assert [m["text"] for m in body["chat"]] == texts(again)
    await shop.stop()


async def test_a_forged_author_an_edit_or_a_delete_closes_that_socket_only(lc: Livecart) -> None:
    cart = await lc.cart("alice")
    honest = await lc.client(cart, lc.token("alice"))
    say(honest, "hello", "alice")
    await eventually(lambda: texts(honest) == ["hello"])
    for attack in ("forge", "forge-role", "edit", "delete"):
        bad = await lc.client(cart, lc.token("alice"))
        await eventually(lambda: texts(bad) == texts(honest), what="the newcomer has the chat")
        with bad.doc.transaction():
            if attack == "forge":
                say(bad, "I am staff", "root", "admin")
            elif attack == "forge-role":
                say(bad, "I am staff", "alice", "admin")
            elif attack == "edit":
                chat(bad)[0]["text"] = "I never said that"
            else:
                del chat(bad)[0]
        code, reason = await bad.wait_closed()
        assert code == 4400, (attack, code, reason)
        assert "chat" in reason, reason
    assert not honest.closed.is_set()
    say(honest, "still here", "alice")
    watcher = await lc.client(cart, lc.token("root", "admin"))
    await eventually(lambda: texts(watcher) == ["hello", "still here"], what="the honest socket goes on")


async def test_bad_messages_and_a_flood(lc: Livecart) -> None:
    cart = await lc.cart("alice")
    token = lc.token("alice")
    for text, code in (("x" * 2001, 4400), ("x" * 1_000_000, 4400), ("é" * 1_000_000, 4413)):
        client = await lc.client(cart, token)
        say(client, text, "alice")
        assert (await client.wait_closed())[0] == code, len(text)
    flood = await lc.client(cart, token)
    with flood.doc.transaction():
        for i in range(lc.config.max_messages_per_second + 5):
            say(flood, f"buy now {i}", "alice")
    code, reason = await flood.wait_closed()
    assert code == 4429, reason
    framed = await lc.client(cart, token)
    for i in range(lc.config.max_messages_per_second * 3):
        say(framed, f"spam {i}", "alice", msg_id=f"spam-{i}")  # a frame each
    assert (await framed.wait_closed())[0] == 4429
    for body, status in (({"text": ""}, 400), ({"text": "x" * 2001}, 400), ({"text": "x" * 1_000_000}, 400),
                         ({"text": 5}, 400), ({}, 400)):
        got, err = await lc.call("POST", f"/api/carts/{cart}/messages", token, json=body)
        assert got == status and err["error"]["code"] in ("bad_message", "bad_request"), (body, err)
    assert (await lc.call("POST", "/api/carts/nope/messages", token, json={"text": "hi"}))[0] == 404
    assert (await lc.call("POST", f"/api/carts/{cart}/messages", lc.token("eve"), json={"text": "hi"}))[0] == 403


async def test_an_http_flood_is_refused_429(tmp_path, session) -> None:
    from harness import make_config
    lc = await Livecart(make_config(tmp_path, max_messages_per_second=2), session).start()
    try:
        cart = await lc.cart("alice")
        token = lc.token("alice")
        answers = await asyncio.gather(*(lc.call("POST", f"/api/carts/{cart}/messages", token, json={"text": f"hi {i}"})
                                         for i in range(12)))
        statuses = [status for status, _ in answers]
        assert statuses.count(429) >= 1 and 201 in statuses, statuses
        refused = next(body for status, body in answers if status == 429)
        assert refused["error"]["code"] == "too_many_messages"
        status, body = await lc.call("GET", f"/api/carts/{cart}", token)
        assert len(body["chat"]) == statuses.count(201)  # what was refused was not stored
    finally:
        await lc.stop()


async def test_chat_across_a_merge(lc: Livecart) -> None:
    """An assistant talks with a walk-in shopper; the shopper claims the walk-in cart into their own:
    the conversation moves with the lines, and a message to the merged cart names the new one."""
    assistant = lc.token("amy", "assistant")
    status, body = await lc.call("POST", "/api/carts", assistant, json={})
    walk_in = body["cartId"]
    amy = await lc.client(walk_in, assistant)
    say(amy, "Welcome! Shall I keep these aside?", "amy", "assistant")
    status, _ = await lc.call("POST", f"/api/carts/{walk_in}/lines", assistant, json={"sku": "TEE", "qty": 1})
    assert status == 201
    await eventually(lambda: texts(amy) == ["Welcome! Shall I keep these aside?"])
    status, invite = await lc.call("POST", f"/api/carts/{walk_in}/invites", assistant)
    assert status == 201, invite
    own = await lc.cart("bob")
    bob = await lc.client(own, lc.token("bob"))
    say(bob, "my list for later", "bob")
    await eventually(lambda: texts(bob) == ["my list for later"])
    status, claimed = await lc.call("POST", f"/api/invites/{invite['code']}/accept", lc.token("bob"))
    assert status == 200 and claimed["cartId"] == own, claimed
    await eventually(lambda: texts(bob) == ["my list for later", "Welcome! Shall I keep these aside?"],
                     what="the walk-in conversation in bob's cart")
    code, reason = await amy.wait_closed()
    assert code == 4409 and own in reason
    status, err = await lc.call("POST", f"/api/carts/{walk_in}/messages", assistant, json={"text": "hello?"})
    assert status == 409 and err["error"]["code"] == "merged" and own in err["error"]["message"], err
    status, body = await lc.call("GET", f"/api/carts/{own}", lc.token("bob"))
    assert [m["from"] for m in body["chat"]] == ["bob", "amy"]


async def test_typing_shows_on_the_shop_floor(lc: Livecart) -> None:
    shop = await Feed(lc).start()
    cart = await lc.cart("alice")
    shopper = await lc.client(cart, lc.token("alice"))
    await shopper.set_presence({"user": {"name": "Alice", "role": "customer"}, "typing": True})
    await eventually(lambda: any(p.get("typing") for e in shop.of("cart.presence") if e["cartId"] == cart
                                 for p in e["present"]), what="typing on the shop floor")
    await shopper.set_presence({"user": {"name": "Alice", "role": "customer"}, "typing": False})
    await eventually(lambda: not any(p.get("typing") for p in shop.of("cart.presence")[-1]["present"]))
    await shop.stop()
