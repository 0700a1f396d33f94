"""The y-protocols wire format (sync step 1/2, update, awareness, query-awareness) on pycrdt's helpers."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pycrdt import (
    Decoder,
    YMessageType,
    YSyncMessageType,
    create_awareness_message,
    create_update_message,
    write_var_uint,
)

QUERY_AWARENESS = 3
EMPTY_UPDATE = b"\x00\x00"


class Kind(Enum):
    SYNC_STEP1 = "sync1"
    SYNC_STEP2 = "sync2"
    UPDATE = "update"
    AWARENESS = "awareness"
    QUERY_AWARENESS = "query_awareness"
    AUTH = "auth"


@dataclass(frozen=True)
class Message:
    kind: Kind
    payload: bytes = b""


class ProtocolError(ValueError):
    """A frame that is not a y-protocols message."""


_SYNC_KINDS = {
    YSyncMessageType.SYNC_STEP1: Kind.SYNC_STEP1,
    YSyncMessageType.SYNC_STEP2: Kind.SYNC_STEP2,
    YSyncMessageType.SYNC_UPDATE: Kind.UPDATE,
}


def _payload(decoder: Decoder) -> bytes | None:
    payload = decoder.read_message()
    if decoder.length < 0:  # pycrdt's Decoder slices without checking the declared length
        raise ProtocolError("message shorter than its declared length")
    return payload


def parse(frame: bytes) -> Message:
    """Splits one websocket frame into its message kind and payload."""
    try:
        decoder = Decoder(frame)
        top = decoder.read_var_uint()
        if top == YMessageType.SYNC:
            sub = decoder.read_var_uint()
            kind = _SYNC_KINDS.get(sub)
            payload = _payload(decoder)
            if kind is None or payload is None:
                raise ProtocolError(f"unknown sync message {sub}")
            return Message(kind, payload)
        if top == YMessageType.AWARENESS:
            payload = _payload(decoder)
            if payload is None:
                raise ProtocolError("empty awareness message")
            return Message(Kind.AWARENESS, payload)
        if top == QUERY_AWARENESS:
            return Message(Kind.QUERY_AWARENESS)
        if top == 2:
            return Message(Kind.AUTH)
    except (IndexError, RuntimeError) as exc:
        raise ProtocolError(f"truncated message: {exc}") from None
    raise ProtocolError(f"unknown message type {top}")


def sync_step1(state: bytes) -> bytes:
    return bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP1]) + write_var_uint(len(state)) + state


def sync_step2(update: bytes) -> bytes:
    return bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP2]) + write_var_uint(len(update)) + update


def update_message(update: bytes) -> bytes:
    return create_update_message(update)


def awareness_message(payload: bytes) -> bytes:
    return create_awareness_message(payload)
