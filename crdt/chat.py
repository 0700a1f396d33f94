"""The cart's conversation (root `chat`, DESIGN.md "Talking to the shopper"): its rules for a client
update (append only, the author is the connection's token, bounded text), the server's own appends,
and plain reads (messages, unread)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from pycrdt import Array, Map

from . import raw
from .schema import MAX_SAFE_INTEGER, Limits

ROOT = "chat"
MESSAGE_FIELDS = frozenset({"id", "from", "role", "text", "at"})
STAFF_ROLES = frozenset({"assistant", "operator", "admin"})


@dataclass(frozen=True)
class Author:
    """Who sends a client update (its connection's token) and how many chat messages it may
    append now (the connection's rate budget: a flood is refused, not stored)."""

    sub: str
    role: str
    budget: int = 1_000_000


class ChatTouches:
    """What an armed transaction did to `chat`, as its deep observer records it: the values
    appended, and whether anything that was there already changed or went."""

    __slots__ = ("added", "changed")

    def __init__(self) -> None:
        self.added: list[Any] = []
        self.changed = False

    def on_chat(self, events: list[Any]) -> None:
        for ev in events:
            if ev.path:  # inside a message that existed before this transaction
                self.changed = True
                continue
            for op in ev.delta:
                if "delete" in op:
                    self.changed = True
                elif "insert" in op:
                    self.added.extend(op["insert"])


Broken = tuple[str, str]  # (code, reason): `chat` for a broken rule, `chat_rate` for a flood


def check_appended(touches: ChatTouches, txn: Any, author: Author | None, limits: Limits
                   ) -> tuple[Broken | None, list[dict[str, Any]]]:
    """Judges what a client transaction did to `chat`: (the broken rule or None, the new messages)."""
    if touches.changed:
        return ("chat", "chat is append only: a message may not be edited or deleted"), []
    if not touches.added:
        return None, []
    if author is None:
        return ("chat", "chat messages need an author (a signed-in connection)"), []
    if len(touches.added) > author.budget:
        return ("chat_rate", f"too many chat messages ({len(touches.added)}; the rate allows {author.budget} now)"), []
    messages = []
    for value in touches.added:
        if not isinstance(value, raw.RawMap):
            return ("chat", "a chat message must be a map {id, from, role, text, at}"), []
        fields = raw.fields(value, txn)
        reason = check_message(fields, author, limits)
        if reason:
            return ("chat", reason), []
        messages.append({k: _plain(v) for k, v in fields.items()})
    return None, messages


def check_message(fields: dict[str, Any], author: Author, limits: Limits) -> str | None:
    """One appended message: its fields, its author, its text."""
    extra = fields.keys() - MESSAGE_FIELDS
    if extra:
        return f"chat: unknown field {sorted(extra)[0]!r} (allowed: id, from, role, text, at)"
    missing = MESSAGE_FIELDS - fields.keys()
    if missing:
        return f"chat: a message needs {sorted(missing)[0]!r}"
    msg_id, text, at = fields["id"], fields["text"], fields["at"]
    if not isinstance(msg_id, str) or not 0 < len(msg_id) <= limits.max_string_chars:
        return f"chat: id must be a string of 1..{limits.max_string_chars} characters"
    if fields["from"] != author.sub or fields["role"] != author.role:
        return "chat: a message's from/role must be the sender's own (token sub and role)"
    if not isinstance(text, str) or not 0 < len(text) <= limits.max_chat_chars:
        return f"chat: text must be 1..{limits.max_chat_chars} characters"
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not 0 <= at <= MAX_SAFE_INTEGER:
        return f"chat: at must be a number of ms in 0..{MAX_SAFE_INTEGER}"
    return None


def check_text(text: Any, limits: Limits) -> str | None:
    """The rule on a message's text, for writers other than Yjs clients (HTTP)."""
    if not isinstance(text, str) or not 0 < len(text) <= limits.max_chat_chars:
        return f"text must be a string of 1..{limits.max_chat_chars} characters"
    return None


def message(msg_id: str, sub: str, role: str, text: str, at: int) -> Map:
    """A message as the schema wants it, ready to be appended to `chat`."""
    return Map({"id": msg_id, "from": sub, "role": role, "text": text, "at": at})


def append(chat: Array, messages: Iterable[dict[str, Any]]) -> None:
    """Appends messages (plain dicts of the five fields) inside the caller's transaction."""
    for m in messages:
        chat.append(message(str(m["id"]), str(m["from"]), str(m["role"]), str(m["text"]), m["at"]))


def messages(chat: Array) -> list[dict[str, Any]]:
    """The conversation as plain dicts, in document order (read inside the caller's transaction)."""
    out = []
    for value in chat:
        if isinstance(value, Map):
            out.append({k: _plain(v) for k, v in value.items()})
    return out


def _plain(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def key(m: dict[str, Any]) -> tuple[str, str]:
    """A message's identity: its id within its author (ids are the sender's to choose)."""
    return (str(m.get("from")), str(m.get("id")))


def to_copy(source: list[dict[str, Any]], target: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The source's messages the target lacks (a merge moves the conversation), in the source's order."""
    have = {key(m) for m in target}
    return [m for m in source if key(m) not in have]


def unread(msgs: list[dict[str, Any]]) -> int:
    """Messages from the shopper's side since staff last wrote (what staff have not answered)."""
    count = 0
    for m in reversed(msgs):
        if m.get("role") in STAFF_ROLES:
            break
        count += 1
    return count


__all__ = ["Author", "ChatTouches", "MESSAGE_FIELDS", "ROOT", "STAFF_ROLES", "append", "check_appended",
           "check_message", "check_text", "key", "message", "messages", "to_copy", "unread"]
