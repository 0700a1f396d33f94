"""Group commit: writes that arrive together (while one is in flight, or in one turn of the loop) go out together."""
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
                _resolve(batch, results)
        finally:
            self._flushing = False


class Retry(Exception):
    """Raised by a TickBatcher's write when it could not start (the database is busy): try again shortly."""


class TickBatcher(Generic[Item]):
    """Whatever is appended during one turn of the event loop is written in one synchronous call
    right after it, on the loop's own thread.

    For writes that cost microseconds (a SQLite commit without an fsync), a hop to a thread and
    back costs several times the write itself; writing in place keeps the order of appends and
    never blocks on another writer: a write that finds the database busy raises `Retry` and
    runs again a moment later.
    """

    def __init__(self, write: Callable[[list[Item]], list[Any]], retry_after: float = 0.002) -> None:
        self._write = write
        self._retry_after = retry_after
        self._queue: list[tuple[Item, asyncio.Future[Any]]] = []
        self._handle: asyncio.Handle | None = None
        self._paused = False

    def append(self, item: Item) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((item, future))
        if self._handle is None and not self._paused:
            self._handle = loop.call_soon(self._flush)
        return future

    def pause(self) -> None:
        """Holds writes back (appends still queue) until `resume`: a moment for someone else's write."""
        self._paused = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def resume(self) -> None:
        self._paused = False
        if self._queue and self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self._flush)

    async def idle(self) -> None:
        """Waits until nothing is queued (before closing the store)."""
        while self._handle is not None or self._queue:
            await asyncio.sleep(0.005)

    def _flush(self) -> None:
        self._handle = None
        batch, self._queue = self._queue, []
        try:
            results = self._write([item for item, _ in batch])
        except Retry:
            self._queue[:0] = batch
            self._handle = asyncio.get_running_loop().call_later(self._retry_after, self._flush)
            return
        except Exception as exc:  # the whole write failed: every item in it did
            results = [exc] * len(batch)
        _resolve(batch, results)


def _resolve(batch: list[tuple[Any, asyncio.Future[Any]]], results: list[Any]) -> None:
    """Gives each waiting append its result (or the exception that stopped it)."""
    for (_, future), result in zip(batch, results):
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
