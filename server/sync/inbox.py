"""What one connection has sent and its room has not taken yet: in order, bounded, consecutive
document updates merged into one, so a sender faster than the process costs one pass of the edit
pipeline per batch rather than a queue that grows without bound."""
from __future__ import annotations

import asyncio
from collections import deque

from pycrdt import merge_updates

from ...crdt.protocol import Kind, ProtocolError, parse, update_message
from .connection import REJECTED, Close

UPDATES = (Kind.SYNC_STEP2, Kind.UPDATE)


class Inbox:
    """A connection's unprocessed frames, oldest first.

    Yjs updates merge (the result is the same document as applying them one by one), so a run of
    updates waiting behind a busy room is taken as one: validated, stored and relayed once. That
    bounds the work a sender can queue to one pass per turn of its room, whatever its rate; its
    intermediate states may never be relayed, its last one always is. Other messages (sync step 1,
    awareness) keep their place between the runs. Past `limit_bytes` waiting, the read loop stops
    reading the socket until the room has taken the backlog: TCP pushes back on that sender alone.
    """

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.bytes = 0
        self.merged = 0  # updates that travelled in a batch with others (for logs and tests)
        self._items: deque[list[bytes] | bytes] = deque()  # a run of update payloads, or a frame
        self._taken = asyncio.Event()
        self._arrived = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, frame: bytes) -> None:
        """Queues one frame; a malformed one is refused here, before anything after it runs."""
        try:
            msg = parse(frame)
        except ProtocolError as exc:
            raise Close(REJECTED, f"not a y-protocols message: {exc}") from None
        if msg.kind not in UPDATES:
            self.bytes += len(frame)
            self._items.append(frame)
            self._arrived.set()
            return
        self.bytes += len(msg.payload)
        if self._items and isinstance(self._items[-1], list):
            self._items[-1].append(msg.payload)
        else:
            self._items.append([msg.payload])
        self._arrived.set()

    def take(self) -> bytes:
        """The oldest frame, or the oldest run of updates merged into one update message."""
        item = self._items.popleft()
        if isinstance(item, list):
            merged = self._merge(item)
            if merged is None:  # one of them is not a valid update: the validator judges each alone
                first, rest = item[0], item[1:]
                self._items.appendleft(rest)
                self.bytes -= len(first)
                self._taken.set()
                return update_message(first)
            frame = update_message(merged)
            self.bytes -= sum(len(p) for p in item)
        else:
            frame = item
            self.bytes -= len(frame)
        self._taken.set()
        return frame

    def _merge(self, payloads: list[bytes]) -> bytes | None:
        if len(payloads) == 1:
            return payloads[0]
        try:
            merged = merge_updates(*payloads)
        except Exception:  # pycrdt raises on a malformed update; the validator's refusal is the clear one
            return None
        self.merged += len(payloads)
        return merged

    @property
    def full(self) -> bool:
        return self.bytes > self.limit_bytes

    async def room_for_more(self) -> None:
        """Waits (the caller reading nothing meanwhile) until the backlog is back under its bound."""
        while self.full:
            self._taken.clear()
            await self._taken.wait()

    async def next(self, reading: asyncio.Future[None]) -> bool:
        """Waits for a frame to take: True once there is one, False once `reading` ended and all is taken."""
        while not self._items:
            if reading.done():
                return False
            self._arrived.clear()
            await self._arrived.wait()
        return True

    def reader_done(self, _: asyncio.Future[None]) -> None:
        self._arrived.set()
