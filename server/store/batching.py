"""Group commit: writes that arrive while one is in flight go out together."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Generic, TypeVar

Item = TypeVar("Item")
# Writes a batch in order; gives each item its result, or the exception that stopped it.
WriteBatch = Callable[[list[Item]], Awaitable[list[Any]]]


class AppendBatcher(Generic[Item]):
    """One write in flight at a time; whatever queued meanwhile is the next batch.

    So a busy shop pays one fsync (or one Redis round trip) per batch, not per
    write, and writes keep their order.
    """

    def __init__(self, write: WriteBatch[Item]) -> None:
        self._write = write
        self._queue: list[tuple[Item, asyncio.Future[Any]]] = []
        self._flushing = False

    def append(self, item: Item) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
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
                    results = await self._write([item for item, _ in batch])
                except Exception as exc:  # the whole write failed: every item in it did
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._flushing = False
