"""Server websockets that end the way DESIGN.md says: a frame over the size limit closes 4413
with a reason (whatever its size), and a socket closes 4401 when its token expires."""
from __future__ import annotations

import asyncio
import time
from typing import Callable

from aiohttp import WSCloseCode, web

from . import logs
from .auth import Identity

REJECTED, UNAUTHORIZED, TOO_LARGE = 4400, 4401, 4413
LINGER_SECONDS = 10.0  # how long a peer still sending what was refused may take to hang up


def close_reason(reason: str) -> bytes:
    # A close reason may hold at most 123 bytes of UTF-8.
    return reason.encode()[:123].decode("utf-8", "ignore").encode()


async def close_ws(ws: web.WebSocketResponse, code: int, reason: str) -> None:
    await ws.close(code=code, message=close_reason(reason))


class LimitedSocket(web.WebSocketResponse):
    """A websocket response that reads no frame over `max_bytes`: such a frame ends it with 4413.

    aiohttp refuses a frame of `max_msg_size` bytes or more at its header, before buffering
    any of it, and then closes with 1009 and drops the connection while the peer is still
    sending, so the peer sees its connection reset (1006). Here that close sends 4413 with
    a reason and waits (bounded) for the peer to hang up first, discarding what it sends.
    Frames aiohttp cannot read at all (1002, 1007) close so too, with 4400.
    """

    def __init__(self, request: web.Request, max_bytes: int, **kwargs: object) -> None:
        super().__init__(max_msg_size=max_bytes + 1, **kwargs)  # type: ignore[arg-type]
        self._request, self.max_bytes = request, max_bytes
        self.refusing = False  # its close frame is out: whoever writes to its transport must stop
        self.on_close: Callable[[int, str, bool], None] | None = _closed_hook(request)  # counts close codes

    def _reset_heartbeat(self) -> None:
        # aiohttp (3.14) re-arms the heartbeat when bytes arrive after `close()` (the peer's own
        # close frame): the timer then keeps the closed socket, its request and handler alive for
        # 1.5 × the heartbeat (45 s here), which a burst of short connections turns into megabytes.
        if not (self._closed or self._closing):
            super()._reset_heartbeat()

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True) -> bool:
        refused = self._refusal(code)  # only aiohttp's reader closes with these codes
        if refused is not None and not self.closed:
            code, message = refused[0], close_reason(refused[1])
        if not self.closed and not self._closing and self.on_close is not None:
            self.on_close(code, message.decode("utf-8", "replace"), refused is not None)
        if refused is not None and not self.closed:
            await self._linger(code, message)
        return await super().close(code=code, message=message, drain=drain)

    def _refusal(self, code: int) -> tuple[int, str] | None:
        if code == WSCloseCode.MESSAGE_TOO_BIG:
            return TOO_LARGE, f"message over {self.max_bytes} bytes"
        if code == WSCloseCode.PROTOCOL_ERROR:
            return REJECTED, "not a valid websocket frame"
        if code == WSCloseCode.INVALID_TEXT:
            return REJECTED, "text frame is not UTF-8"
        return None

    async def _linger(self, code: int, message: bytes) -> None:
        """Sends the close frame and half-closes, then waits for the peer to hang up: a socket
        closed with unread input resets the connection, and the peer loses the close frame."""
        transport, writer = self._request.transport, self._writer
        if transport is None or transport.is_closing() or writer is None:
            return
        self.refusing = True
        try:
            await writer.close(code, message)  # the close frame; aiohttp sends nothing more after it
            if transport.can_write_eof():
                transport.write_eof()
        except (ConnectionError, RuntimeError):
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINGER_SECONDS
        while self._request.transport is not None and not transport.is_closing() and loop.time() < deadline:
            await asyncio.sleep(0.05)


def _closed_hook(request: web.Request) -> Callable[[int, str, bool], None] | None:
    """The app's close counter (server/metrics.py), if the app has one."""
    from .services import SERVICES  # the sockets are below the services: looked up when a socket opens

    services = request.app.get(SERVICES)
    if services is None:
        return None
    metrics = services.metrics

    def closed(code: int, reason: str, refused: bool) -> None:
        metrics.closed(code)
        if refused:  # a frame the reader refused (too large, not a frame): a rejection too
            metrics.rejected(reason, code)
            logs.event("socket.rejected", path=request.path, code=code, rule=reason, request_id=logs.request_id(request))
    return closed


def close_at_expiry(who: Identity, close: Callable[[int, str], object]) -> asyncio.TimerHandle | None:
    """Calls `close(4401, reason)` when the token behind `who` expires (None: it never does)."""
    if who.exp is None:
        return None
    delay = max(0.0, who.exp - time.time())
    return asyncio.get_running_loop().call_later(delay, close, UNAUTHORIZED, "token expired")
