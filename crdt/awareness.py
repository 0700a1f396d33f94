"""Awareness updates from clients, judged before they are applied: each state strict JSON that
JavaScript's `JSON.parse` takes, of an object (or null: a removal), bounded in size and depth."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from pycrdt import write_var_uint

from .updates import MalformedUpdate, _Reader

# lib0's readVarUint throws past this, in every client the number is relayed to.
MAX_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True)
class AwarenessLimits:
    max_state_bytes: int = 8 * 1024  # one client's state (a tab's name, role, focus, cursor) as JSON
    max_depth: int = 16
    max_clients: int = 4  # client ids one connection may introduce; a browser tab has one


@dataclass(frozen=True)
class Entry:
    """One client's state in an awareness update, as sent (its JSON text already judged)."""

    client_id: int
    clock: int
    json: bytes
    removal: bool  # the state is null


class BadAwareness(ValueError):
    """An awareness update to refuse; `too_large` when its only fault is size."""

    def __init__(self, reason: str, too_large: bool = False) -> None:
        super().__init__(reason)
        self.too_large = too_large


def read_update(payload: bytes, limits: AwarenessLimits = AwarenessLimits()) -> list[Entry]:
    """The entries of an awareness update, every state judged; raises BadAwareness."""
    reader = _Reader(payload)
    try:
        count = reader.uint()
        if count > len(payload) // 3:  # an entry takes at least three bytes
            raise BadAwareness("awareness update shorter than the entries it declares")
        entries = [_read_entry(reader, limits) for _ in range(count)]
    except MalformedUpdate as exc:
        raise BadAwareness(f"malformed awareness update: {exc}") from None
    if reader.pos != len(payload):
        raise BadAwareness("malformed awareness update: bytes after its last entry")
    return entries


def _read_entry(reader: _Reader, limits: AwarenessLimits) -> Entry:
    client_id, clock = reader.uint(), reader.uint()
    if client_id > MAX_SAFE_INTEGER or clock > MAX_SAFE_INTEGER:
        raise BadAwareness("awareness client id or clock over 2^53 - 1")
    size, start = reader.uint(), reader.pos
    reader.skip(size)  # a length past the end is a malformed update, not a large one
    if size > limits.max_state_bytes:
        raise BadAwareness(f"awareness state over {limits.max_state_bytes} bytes", too_large=True)
    text = reader.buf[start:reader.pos]
    return Entry(client_id, clock, text, judge_state(text, limits) is None)


def judge_state(text: bytes, limits: AwarenessLimits) -> dict[str, Any] | None:
    """The state `text` holds if it is null or a JSON object that JSON.parse reads as sent,
    and that the server can send on as UTF-8 JSON; else raises BadAwareness."""
    try:
        state = json.loads(text.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadAwareness(f"awareness state is not strict JSON ({str(exc)[:60]})") from None
    try:  # JSON.parse takes an escaped lone surrogate; the UTF-8 feeds it reaches cannot
        json.dumps(state, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadAwareness("awareness state holds a lone surrogate") from None
    if state is not None and not isinstance(state, dict):
        raise BadAwareness("awareness state must be a JSON object or null")
    if _depth(state) > limits.max_depth:
        raise BadAwareness(f"awareness state nested over {limits.max_depth} levels")
    return state


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # JSON.parse makes 1e400 Infinity, which JSON cannot carry on
        raise ValueError(f"{text[:20]} is out of range")
    return value


def _depth(value: Any) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [child for v in level if isinstance(v, (dict, list))
                 for child in (v.values() if isinstance(v, dict) else v)]
    return depth - 1


def write_update(entries: list[Entry]) -> bytes:
    """An awareness update of these entries (as y-protocols encodes one)."""
    out = [write_var_uint(len(entries))]
    for entry in entries:
        out += [write_var_uint(entry.client_id), write_var_uint(entry.clock),
                write_var_uint(len(entry.json)), entry.json]
    return b"".join(out)
