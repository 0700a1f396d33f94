"""Who has a cart open: the room's awareness states, which connection owns which, and the limits a
connection's presence is held to. Judged as y-protocols does (only a newer clock counts); sending
is the room's."""
from __future__ import annotations

from typing import Any, Iterable

from pycrdt import Awareness, Decoder, Doc

from ...crdt.awareness import AwarenessLimits, BadAwareness, Entry, read_update, write_update
from .connection import REJECTED, TOO_LARGE, Close, Connection

AWARENESS = AwarenessLimits()


class Presence:
    """The awareness states of one room, each owned by the connection that introduced it."""

    def __init__(self) -> None:
        self.awareness = Awareness(Doc())
        self.awareness.set_local_state(None)  # the server itself has no presence
        self._owner: dict[int, Connection] = {}  # awareness client id -> the socket it came from

    def anyone(self) -> bool:
        return bool(self.awareness.states)

    def encode(self, client_ids: Iterable[int] | None = None) -> bytes:
        """An awareness update of these clients (None: of everyone present)."""
        return self.awareness.encode_awareness_update(list(self.awareness.states if client_ids is None else client_ids))

    def who(self) -> list[dict[str, Any]]:
        """Who has the cart open, from awareness: name, role, channel, focused or away, typing in the chat."""
        present = []
        for client_id, state in self.awareness.states.items():
            if not isinstance(state, dict):  # judged on the way in; a process of an older version may not have
                continue
            user = state.get("user") if isinstance(state.get("user"), dict) else {}
            present.append({"clientId": client_id, "name": _text(user.get("name")), "role": _text(user.get("role")),
                            "channel": _text(user.get("channel")), "focus": state.get("focus", True) is not False,
                             **({"typing": True} if state.get("typing") is True else {})})
        return present

    def from_client(self, conn: Connection, payload: bytes) -> list[int]:
        """Applies a client's awareness message; returns the client ids it changed (to relay).
        Closes (raises Close) on a message that breaks the limits."""
        try:
            entries = read_update(payload, AWARENESS)
        except BadAwareness as exc:
            raise Close(TOO_LARGE if exc.too_large else REJECTED, str(exc)) from None
        # A removal of a client the room never heard of changes nothing: not kept, not relayed.
        entries = [e for e in entries if not e.removal or e.client_id in self.awareness.meta]
        self._count_introduced(conn, entries)
        changed = self._apply(write_update(entries), conn) if entries else []
        for client_id in changed:
            # A connection owns the presence it introduced, never the states of others
            # that the stock client echoes back (else its leaving would remove them all).
            owner = self._owner.get(client_id)
            if client_id in self.awareness.states and owner in (None, conn):
                self._owner[client_id] = conn
                conn.awareness_ids.add(client_id)
            elif client_id not in self.awareness.states and owner is conn:
                del self._owner[client_id]
                conn.awareness_ids.discard(client_id)
        return changed

    def from_remote(self, payload: bytes) -> list[int]:
        """Applies another process's awareness update; returns the client ids it changed."""
        return self._apply(payload, "remote")

    def leave(self, conn: Connection) -> list[int]:
        """Drops the states a connection owned; returns their client ids (to relay)."""
        gone = [i for i in conn.awareness_ids if self._owner.get(i) is conn]
        for client_id in gone:
            del self._owner[client_id]
        if gone:
            self.awareness.remove_awareness_states(gone, conn)
        return gone

    def _count_introduced(self, conn: Connection, entries: list[Entry]) -> None:
        """A connection may bring in a few awareness clients of its own, over its whole life
        (so it cannot cycle through ids either); closes it with 4400 past that."""
        meta = self.awareness.meta
        new = {e.client_id for e in entries if not e.removal and self._owner.get(e.client_id) is None
               and e.clock > meta.get(e.client_id, {}).get("clock", 0)}
        if len(conn.introduced | new) > AWARENESS.max_clients:
            raise Close(REJECTED, f"too many awareness clients on one connection (max {AWARENESS.max_clients})")
        conn.introduced |= new

    def _apply(self, payload: bytes, origin: Any) -> list[int]:
        """Applies an awareness update; returns the client ids it really advanced.

        As in y-protocols, a state counts only with a newer clock (or a removal at the
        same clock); echoes of what everyone has already are dropped, not re-broadcast.
        """
        decoder = Decoder(payload)
        ids = []
        for _ in range(decoder.read_var_uint()):
            ids.append(decoder.read_var_uint())
            decoder.read_var_uint()  # clock
            decoder.read_var_string()  # state
        meta, states = self.awareness.meta, self.awareness.states
        before = {i: (meta.get(i, {}).get("clock"), i in states) for i in ids}
        self.awareness.apply_awareness_update(payload, origin)
        return [i for i in ids if (meta.get(i, {}).get("clock"), i in states) != before[i]]


def _text(value: Any) -> str | None:
    """A presence field as the shop-floor feed shows it: a string, or nothing."""
    return value if isinstance(value, str) else None
