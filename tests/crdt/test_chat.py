"""Chat on the cart (root `chat`): appends from several authors converge in any interleaving; a
forged author, an edited or deleted message, a bad message or a flood is rejected, the cart as it
was; a merge moves the conversation."""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Map, Text

from livecart.crdt import merge
from livecart.crdt.cart import CartDoc
from livecart.crdt.chat import Author, unread
from livecart.crdt.validate import Rejected

from .ytools import LIMITS, Client, catalog, encode_update, snapshot, state_equal

AUTHORS = [Author("cust-1", "customer"), Author("anna", "assistant"), Author("olga", "operator"),
           Author("root", "admin")]


class Talker(Client):
    """A Yjs client with an identity: what it appends names it."""

    def __init__(self, author: Author) -> None:
        super().__init__()
        self.author = author
        self.chat = self.doc.get("chat", type=Array)
        self.sent = 0  # of `updates`, how many reached the server
        self.said: list[str] = []

    def say(self, text: str, at: int) -> bytes:
        msg_id = f"{self.author.sub}-{len(self.said)}"
        self.said.append(msg_id)
        return self.edit(lambda c: c.chat.append(Map({"id": msg_id, "from": self.author.sub,
                                                      "role": self.author.role, "text": text, "at": at})))


def chat_of(talker: Talker) -> list[dict[str, Any]]:
    with talker.doc.transaction():
        return [{k: v for k, v in m.items()} for m in talker.chat]


def accept(cart: CartDoc, update: bytes, author: Author) -> None:
    verdict = cart.apply_client_update(update, catalog, LIMITS, author)
    assert verdict.ok, verdict


def reject(cart: CartDoc, update: bytes, author: Author | None, code: str = "chat") -> Rejected:
    before = snapshot(cart)
    verdict = cart.apply_client_update(update, catalog, LIMITS, author)
    assert isinstance(verdict, Rejected), "accepted"
    assert verdict.code == code, verdict
    state_equal(cart, before)
    return verdict


def cart_with_chat() -> CartDoc:
    """A cart where a customer and an assistant have each said something."""
    cart = CartDoc()
    for author, text in ((AUTHORS[0], "is the mug dishwasher safe?"), (AUTHORS[1], "yes, it is")):
        talker = Talker(author)
        talker.sync_from(cart)
        accept(cart, talker.say(text, 1_700_000_000_000), author)
    return cart


# -- convergence -------------------------------------------------------------------------------

STEP = st.tuples(st.sampled_from(("say", "send", "sync")), st.integers(0, len(AUTHORS) - 1),
                 st.text(min_size=1, max_size=40))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(STEP, min_size=1, max_size=40))
def test_appends_from_several_authors_in_any_interleaving_converge(steps: list[tuple[str, int, str]]) -> None:
    """Each author appends on its own replica and sends and syncs when it likes: the server takes
    every append, and once all are in, every replica holds the same conversation with every
    message once and each author's messages in the order it wrote them."""
    cart = CartDoc()
    talkers = [Talker(a) for a in AUTHORS]
    clock = 1_700_000_000_000

    def send(t: Talker) -> None:
        for update in t.updates[t.sent:]:
            accept(cart, update, t.author)
        t.sent = len(t.updates)

    for action, who, text in steps:
        t = talkers[who]
        if action == "say":
            clock += 1
            t.say(text, clock)
        elif action == "send":
            send(t)
        else:
            t.sync_from(cart)
    for t in talkers:
        send(t)
    for t in talkers:
        t.sync_from(cart)
    server = cart.messages()
    for t in talkers:
        assert chat_of(t) == server
    ids = [(m["from"], m["id"]) for m in server]
    assert sorted(ids) == sorted((t.author.sub, i) for t in talkers for i in t.said)
    for t in talkers:
        assert [m["id"] for m in server if m["from"] == t.author.sub] == t.said
        assert all(m["role"] == t.author.role for m in server if m["from"] == t.author.sub)


# -- forged author, edits, deletes ---------------------------------------------------------------

def _forge(c: Talker, data: Any) -> None:
    field = data.draw(st.sampled_from(("from", "role", "both")))
    other = data.draw(st.sampled_from([a for a in AUTHORS if a != c.author]))
    sub = other.sub if field in ("from", "both") else c.author.sub
    role = other.role if field in ("role", "both") else c.author.role
    if (sub, role) == (c.author.sub, c.author.role):
        role = "admin" if role != "admin" else "customer"
    c.chat.append(Map({"id": "x", "from": sub, "role": role, "text": "I am someone else", "at": 1}))


def _edit(c: Talker, data: Any) -> None:
    index = data.draw(st.integers(0, len(c.chat) - 1))
    field = data.draw(st.sampled_from(("id", "from", "role", "text", "at", "extra")))
    value = data.draw(st.one_of(st.text(min_size=1, max_size=5), st.integers(0, 10**6)))
    c.chat[index][field] = value


def _unset(c: Talker, data: Any) -> None:
    index = data.draw(st.integers(0, len(c.chat) - 1))
    del c.chat[index][data.draw(st.sampled_from(("id", "from", "role", "text", "at")))]


def _delete(c: Talker, data: Any) -> None:
    index = data.draw(st.integers(0, len(c.chat) - 1))
    del c.chat[index]


def _clear(c: Talker, data: Any) -> None:
    c.chat.clear()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), attack=st.sampled_from((_forge, _edit, _unset, _delete, _clear)),
       who=st.sampled_from(AUTHORS), honest_too=st.booleans())
def test_every_forged_author_edit_or_delete_is_rejected(data: Any, attack: Any, who: Author,
                                                        honest_too: bool) -> None:
    """Whoever sends it (even an admin, even the message's own author), an update that forges an
    author or edits or deletes a message is refused whole — with an honest append beside it too —
    and the cart stays as it was."""
    cart = cart_with_chat()
    c = Talker(who)
    c.sync_from(cart)

    def change(t: Talker) -> None:
        attack(t, data)  # on the messages that were there (the honest append comes after)
        if honest_too:
            t.chat.append(Map({"id": "ok", "from": who.sub, "role": who.role, "text": "hello", "at": 2}))

    reject(cart, c.edit(change), who)


# -- one message's rules -------------------------------------------------------------------------

def _message(**fields: Any) -> dict[str, Any]:
    return {"id": "m1", "from": "cust-1", "role": "customer", "text": "hi", "at": 1_700_000_000_000, **fields}


def _append(cart: CartDoc, value: Any) -> bytes:
    c = Talker(AUTHORS[0])
    c.sync_from(cart)
    return c.edit(lambda t: t.chat.append(value))


@pytest.mark.parametrize("value, reason", [
    (Map(_message(text="")), "text must be 1..2000"),
    (Map(_message(text="x" * 2001)), "text must be 1..2000"),
    (Map(_message(text="x" * 1_000_000)), "text must be 1..2000"),
    (Map(_message(text=Text("hi"))), "text must be"),
    (Map(_message(text=7)), "text must be"),
    (Map(_message(extra="?")), "unknown field 'extra'"),
    (Map({k: v for k, v in _message().items() if k != "at"}), "needs 'at'"),
    (Map(_message(at=-1)), "at must be"),
    (Map(_message(at=True)), "at must be"),
    (Map(_message(id="")), "id must be"),
    (_message(), "must be a map"),
    ("just text", "must be a map"),
])
def test_a_bad_message_is_rejected(value: Any, reason: str) -> None:
    cart = cart_with_chat()
    verdict = reject(cart, _append(cart, value), AUTHORS[0])
    assert reason in verdict.reason


def test_the_longest_message_is_taken() -> None:
    cart = cart_with_chat()
    accept(cart, _append(cart, Map(_message(text="é" * 2000))), AUTHORS[0])
    assert cart.messages()[-1]["text"] == "é" * 2000


def test_an_update_without_an_author_may_not_chat() -> None:
    cart = cart_with_chat()
    reject(cart, _append(cart, Map(_message())), None)


def test_more_messages_than_the_budget_is_a_flood() -> None:
    cart = cart_with_chat()
    c = Talker(AUTHORS[0])
    c.sync_from(cart)
    update = c.edit(lambda t: [t.chat.append(Map(_message(id=f"m{i}"))) for i in range(5)])
    reject(cart, update, Author("cust-1", "customer", budget=4), code="chat_rate")
    accept(cart, update, Author("cust-1", "customer", budget=5))
    assert len(cart.messages()) == 7


def test_keyed_content_under_the_chat_root_is_rejected() -> None:
    """A crafted item that names `chat` as its parent with a key would sit in the array's map part,
    where no reader of the conversation ever looks."""
    from .ytools import Item
    cart = cart_with_chat()
    update = encode_update({777: (0, [Item(("any", ["hidden"]), parent="chat", parent_sub="k")])})
    verdict = cart.apply_client_update(update, catalog, LIMITS, AUTHORS[0])
    assert isinstance(verdict, Rejected) and verdict.code == "schema", verdict


def test_a_line_edit_needs_no_author_and_chat_is_in_the_dict() -> None:
    cart = cart_with_chat()
    assert [m["text"] for m in cart.to_dict()["chat"]] == ["is the mug dishwasher safe?", "yes, it is"]
    assert unread(cart.messages()) == 0
    accept(cart, _append(cart, Map(_message(id="m2", text="and the tee?"))), AUTHORS[0])
    assert unread(cart.messages()) == 1


# -- merge ---------------------------------------------------------------------------------------

def test_a_merge_moves_the_conversation_once() -> None:
    source = cart_with_chat()
    target = CartDoc()
    t = Talker(Author("cust-9", "customer"))
    t.sync_from(target)
    accept(target, t.say("my own cart", 1_600_000_000_000), t.author)
    plan = merge.plan_merge(source, target)
    assert [m["text"] for m in plan.chat] == ["is the mug dishwasher safe?", "yes, it is"]
    assert merge.apply_merge(target, plan)
    merge.apply_merge(target, plan)  # again: nothing repeated
    assert [m["text"] for m in target.messages()] == ["my own cart", "is the mug dishwasher safe?", "yes, it is"]
    assert target.messages()[1] == source.messages()[0]
    assert merge.plan_merge(source, target).chat == []
