"""Group commit for update logs: appends that arrive while a write is in flight go out together."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

# Writes a batch of (cartId, update) in order; gives each its seq, or the exception that stopped it.
WriteBatch = Callable[[list[tuple[str, bytes]]], Awaitable[list["int | BaseException"]]]


class AppendBatcher:
    """One write in flight at a time; whatever queued meanwhile is the next batch.

    So a busy shop pays one fsync (or one Redis round trip) per batch, not per update,
    and appends keep their order.
    """

    def __init__(self, write: WriteBatch) -> None:
        self._write = write
        self._queue: list[tuple[str, bytes, asyncio.Future[int]]] = []
        self._flushing = False

    def append(self, cart_id: str, update: bytes) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((cart_id, update, future))
        if not self._flushing:
            self._flushing = True
            asyncio.ensure_future(self._flush())
        return future

    async def idle(self) -> None:
        """Waits until nothing is queued or being written (before closing the store)."""
        while self._flushing or self._queue:
            await asyncio.sleep(0.005)

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    results = await self._write([(cart_id, update) for cart_id, update, _ in batch])
                except Exception as exc:  # the whole write failed: every append in it did
                    results = [exc] * len(batch)
                for (*_, future), result in zip(batch, results):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._flushing = False
