"""Redis going away under a running store and stock authority: calls fail fast, then work again by themselves."""
from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any, Awaitable, Callable

import pytest
from redis.exceptions import ConnectionError, TimeoutError

from livecart.server.stock.redis import RedisStock
from livecart.server.store.redis import RedisStore

DOWN = (ConnectionError, TimeoutError)
HANG = 30.0  # seconds: a call still waiting this long hangs (the store's own timeout is 2 s)


async def fails_fast(call: Callable[[], Awaitable[Any]]) -> None:
    """The call fails with Redis's error instead of hanging. How fast is the store's TIMEOUT's
    business, not a wall-clock guess here: this bound only tells a hang from a slow machine."""
    with pytest.raises(DOWN):
        await asyncio.wait_for(call(), HANG)


async def until_up(call: Callable[[], Awaitable[Any]]) -> Any:
    deadline = time.monotonic() + HANG
    while True:
        try:
            return await call()
        except DOWN:
            if time.monotonic() > deadline:
                raise AssertionError("never came back") from None
            await asyncio.sleep(0.05)


async def test_killed_and_restarted_redis_keeps_every_acknowledged_write(redis_server) -> None:
    store, stock = RedisStore(redis_server.url), RedisStock(redis_server.url, 60)
    await store.open()
    await stock.start()
    await stock.set_on_hand("MUG", 5)
    assert (await stock.reserve("c1", "l1", "MUG", 2)).qty == 2
    acked: dict[int, bytes] = {}
    stop = asyncio.Event()

    async def editor() -> None:  # a room appending updates the whole time
        n = 0
        while not stop.is_set():
            n += 1
            try:
                seq = await store.append("c1", b"u%d" % n)
                acked[seq] = b"u%d" % n
            except DOWN:
                await asyncio.sleep(0.01)
    editing = asyncio.ensure_future(editor())
    while len(acked) < 50:
        await asyncio.sleep(0.01)
    redis_server.kill()  # mid-run: appends are in flight
    await fails_fast(lambda: store.append("c1", b"lost?"))
    await fails_fast(lambda: store.load("c1"))
    await fails_fast(lambda: stock.reserve("c2", "l1", "MUG", 1))
    await fails_fast(lambda: stock.levels(["MUG"]))
    await asyncio.sleep(0.5)  # the sweeper fails a few times meanwhile, and keeps going
    redis_server.start()  # same port, same AOF (appendfsync always)
    # The same objects work again: no reconnect call, scripts reloaded as Redis forgot them.
    assert (await until_up(lambda: stock.reserve("c2", "l1", "MUG", 1))).qty == 1
    before = len(acked)
    await until_up(lambda: store.append("c1", b"after"))
    while len(acked) < before + 20:
        await asyncio.sleep(0.01)
    stop.set()
    await editing
    assert stock._sweeper is not None and not stock._sweeper.done()

    log = await store.load("c1")
    stored = dict(await store.load_since("c1", 0))
    assert list(stored) == list(range(1, log.last_seq + 1))  # still consecutive
    assert all(stored[seq] == update for seq, update in acked.items())  # nothing acknowledged is lost
    assert (await stock.levels(["MUG"]))["MUG"].to_json() == {"onHand": 5, "held": 3, "available": 2}
    assert (await stock.holds_of("c1"))["l1"].qty == 2
    await stock.stop()
    await store.close()


async def test_a_hung_redis_times_out_instead_of_hanging(redis_server) -> None:
    store, stock = RedisStore(redis_server.url), RedisStock(redis_server.url, 60)
    await store.open()
    await stock.start()
    await stock.set_on_hand("MUG", 1)
    assert redis_server.proc is not None
    os.kill(redis_server.proc.pid, signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        await asyncio.gather(fails_fast(lambda: store.load("c1")), fails_fast(lambda: stock.levels(["MUG"])))
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    assert (await until_up(lambda: stock.levels(["MUG"])))["MUG"].on_hand == 1
    assert await until_up(lambda: store.append("c1", b"u")) == 1
    await stock.stop()
    await store.close()
