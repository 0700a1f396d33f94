"""A y-protocols test client on pycrdt and aiohttp: what a Yjs provider does, observable from tests."""
from __future__ import annotations

import asyncio
import inspect
from typing import Any, Awaitable, Callable

import aiohttp
from pycrdt import Awareness, Doc, Map

from livecart.crdt.protocol import Kind, awareness_message, parse, sync_step1, sync_step2, update_message

# Seconds any wait in the tests may take before it counts as a hang. The suite runs on a busy
# 2-core machine (3 pytest workers beside the Node tests and Chromium): a wait for a condition
# asserts that it happens, never how fast; latency is measured in bench/.
WAIT = 30.0


class YClient:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url
        self.doc = Doc()
        self.lines = self.doc.get("lines", type=Map)
        self.meta = self.doc.get("meta", type=Map)
        self.server = self.doc.get("server", type=Map)
        self.awareness = Awareness(self.doc)
        self.synced = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self.received: list[bytes] = []
        self._remote = False
        self._sub = self.doc.observe(self._on_txn)

    def _on_txn(self, event: Any) -> None:
        if not self._remote and self.ws is not None and not self.ws.closed:
            asyncio.ensure_future(self.ws.send_bytes(update_message(event.update)))

    ws: aiohttp.ClientWebSocketResponse | None = None

    async def connect(self) -> "YClient":
        self.ws = await self.session.ws_connect(self.url)
        await self.ws.send_bytes(sync_step1(self.doc.get_state()))
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        self._close_reason = ""
        while True:
            msg = await self.ws.receive()
            if msg.type == aiohttp.WSMsgType.CLOSE:
                self._close_reason = msg.extra or ""
                await self.ws.close()
                break
            if msg.type != aiohttp.WSMsgType.BINARY:
                break
            self.received.append(msg.data)
            m = parse(msg.data)
            if m.kind is Kind.SYNC_STEP1:
                await self.ws.send_bytes(sync_step2(self.doc.get_update(m.payload)))
            elif m.kind in (Kind.SYNC_STEP2, Kind.UPDATE):
                self._remote = True
                try:
                    self.doc.apply_update(m.payload)
                finally:
                    self._remote = False
                if m.kind is Kind.SYNC_STEP2:
                    self.synced.set()
            elif m.kind is Kind.AWARENESS:
                self.awareness.apply_awareness_update(m.payload, "remote")
        self.close_code = self.ws.close_code
        self.close_reason = self._close_reason
        self.closed.set()

    async def wait_synced(self, timeout: float = WAIT) -> None:
        await asyncio.wait_for(self.synced.wait(), timeout)

    async def wait_closed(self, timeout: float = WAIT) -> tuple[int | None, str]:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code, self.close_reason

    async def send_raw(self, data: bytes) -> None:
        assert self.ws is not None
        await self.ws.send_bytes(data)

    async def set_presence(self, state: dict[str, Any]) -> None:
        self.awareness.set_local_state(state)
        await self.send_raw(awareness_message(
            self.awareness.encode_awareness_update([self.awareness.client_id])))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if hasattr(self, "_reader"):
            await asyncio.wait_for(self._reader, WAIT)

    def snapshot(self) -> dict[str, Any]:
        from livecart.crdt.cart import plain
        with self.doc.transaction():
            return {"lines": plain(self.lines), "meta": plain(self.meta), "server": plain(self.server)}


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = WAIT,
                     what: str = "condition") -> None:
    """Waits, bounded, until `check()` holds (a coroutine function is awaited each time); the
    bound only stops a hang: it is no speed test."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await _holds(check):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def _holds(check: Callable[[], bool | Awaitable[bool]]) -> bool:
    result = check()
    return bool(await result) if inspect.isawaitable(result) else bool(result)
