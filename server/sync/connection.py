"""One cart websocket: close codes, hand-built frames, the inbound rate budget and the outbound backpressure."""
from __future__ import annotations

import asyncio
import logging

from aiohttp import WSCloseCode, web

from ..auth import Identity
from ..config import Config
from ..sockets import close_at_expiry, close_ws

log = logging.getLogger("livecart.rooms")

# Close codes of DESIGN.md; 44xx are final for the stock y-websocket client.
REJECTED, UNAUTHORIZED, FORBIDDEN, NO_CART, GONE, TOO_LARGE, TOO_FAST = (
    4400, 4401, 4403, 4404, 4409, 4413, 4429)


class Close(Exception):
    """Ends one connection with a close code and a reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def binary_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented binary websocket frame (RFC 6455 §5.2), as a server sends it."""
    n = len(payload)
    if n < 126:
        return bytes((0x82, n)) + payload
    if n < 1 << 16:
        return bytes((0x82, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x82, 127)) + n.to_bytes(8, "big") + payload


class Connection:
    """One websocket: frames go straight to its transport, and an inbound rate budget.

    A relay builds each frame once and writes it to every socket of the room
    without a task or a queue per socket (as the y-websocket server's `send`).
    The transport's own buffer is the send queue: a reader that lets it grow past
    `send_buffer_bytes` is cut off at once (its unsent data freed; a close frame
    would only queue behind it), and the client reconnects and resyncs.
    """

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport, who: Identity,
                 config: Config, room_id: str) -> None:
        self.ws, self.transport, self.who, self.room_id = ws, transport, who, room_id
        self.awareness_ids: set[int] = set()  # the awareness client ids it owns now
        self.introduced: set[int] = set()  # every one it has owned (at most AWARENESS.max_clients)
        self._buffer_limit = config.send_buffer_bytes
        self._rate = float(config.max_messages_per_second)
        self._tokens = self._rate
        self._last = asyncio.get_running_loop().time()
        self._closer: asyncio.Future[None] | None = None
        self.closing: Close | None = None
        self._expiry = close_at_expiry(who, self.close_soon)
        self.request_id = ""  # the upgrade request's id, for the log

    def send(self, message: bytes) -> None:
        self.send_frame(binary_frame(message))

    def send_frame(self, frame: bytes) -> None:
        transport = self.transport
        if self.closing or transport.is_closing() or getattr(self.ws, "refusing", False):
            return
        if transport.get_write_buffer_size() > self._buffer_limit:
            log.info("cart %s: %s reads too slowly; connection reset", self.room_id, self.who.sub)
            self.closing = Close(WSCloseCode.TRY_AGAIN_LATER, "client too slow to keep up")
            transport.abort()
            return
        transport.write(frame)

    def close_soon(self, code: int, reason: str) -> None:
        """Closes after what is already written (the close frame queues behind it)."""
        if not self.closing:
            self.closing = Close(code, reason)
            self._closer = asyncio.ensure_future(self._close(self.closing))

    async def _close(self, close: Close) -> None:
        try:
            await close_ws(self.ws, close.code, close.reason)
        except (ConnectionError, RuntimeError):
            pass  # the peer went away; the reader side cleans up

    def allow(self) -> bool:
        """Takes one message from the inbound budget (`max_messages_per_second`, refilled continuously)."""
        self._refill()
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _refill(self) -> None:
        now = asyncio.get_running_loop().time()
        self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
        self._last = now

    def chat_budget(self) -> int:
        """How many chat messages the update in hand may carry: the one its frame paid for, and what
        the inbound budget holds now (a flood of messages in one update is a flood all the same)."""
        self._refill()
        return 1 + max(0, int(self._tokens))

    def spend(self, messages: int) -> None:
        """Takes chat messages beyond the first of an update from the inbound budget."""
        self._tokens -= max(0, messages)

    async def finish(self) -> None:
        """Waits (bounded) for a close in progress to be sent."""
        if self._expiry is not None:
            self._expiry.cancel()
        if self._closer is not None and not self._closer.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._closer), timeout=5)
            except asyncio.TimeoutError:
                self._closer.cancel()
