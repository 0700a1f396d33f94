"""The embedded store's log writer: one commit per turn of the event loop on the loop's own
thread, never waiting for a lock, and a WAL that is synced every second and does not grow."""
from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from livecart.server.store import sqlite as sqlite_store
from livecart.server.store.batching import Retry, TickBatcher
from livecart.server.store.sqlite import SqliteStore

# A busy timeout far longer than any pause a loaded machine causes: code that waited for a lock
# on the loop's thread would stall the loop this long, so "the loop was not held back" can be
# told from "the machine was slow" with a bound that is half of it, not a guess at speed.
LONG_BUSY_MS = 60_000
STALL = LONG_BUSY_MS / 1000 / 2


@pytest.fixture
def long_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_MS", LONG_BUSY_MS)


async def test_what_is_appended_in_one_turn_is_written_together_in_order() -> None:
    batches: list[list[int]] = []
    batcher: TickBatcher[int] = TickBatcher(lambda batch: (batches.append(batch), [i * 10 for i in batch])[1])
    first = [batcher.append(i) for i in range(3)]
    assert batches == []  # nothing is written before the turn ends
    assert await asyncio.gather(*first) == [0, 10, 20]
    second = batcher.append(3)
    assert await second == 30
    assert batches == [[0, 1, 2], [3]]


async def test_a_busy_write_is_retried_ahead_of_later_appends_and_a_failure_reaches_every_caller() -> None:
    calls: list[list[str]] = []
    busy = [True]

    def write(batch: list[str]) -> list[str]:
        calls.append(batch)
        if busy[0]:
            busy[0] = False
            raise Retry()
        if "boom" in batch:
            raise OSError("disk full")
        return [item.upper() for item in batch]

    batcher: TickBatcher[str] = TickBatcher(write, retry_after=0.01)
    early = batcher.append("a")
    await asyncio.sleep(0)  # the first write finds the database busy
    late = batcher.append("b")
    assert await asyncio.gather(early, late) == ["A", "B"]
    assert calls == [["a"], ["a", "b"]]  # retried once, with the newer append behind it
    failed = [batcher.append("boom"), batcher.append("c")]
    for outcome in await asyncio.gather(*failed, return_exceptions=True):
        assert isinstance(outcome, OSError)


async def test_the_loops_writer_never_waits_for_a_lock_held_elsewhere(tmp_path: Path, long_busy_timeout: None) -> None:
    store = SqliteStore(tmp_path / "livecart.db")
    await store.open()
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer (a compaction, an import) holds the lock
    pending = [store.append("c1", b"a"), store.append("c1", b"b")]
    started = time.perf_counter()
    await asyncio.sleep(0.05)
    assert time.perf_counter() - started < STALL  # the loop kept turning (a wait would be 60 s)
    assert not any(p.done() for p in pending)
    other.execute("COMMIT")
    assert await asyncio.wait_for(asyncio.gather(*pending, store.append("c1", b"c")), 2) == [1, 2, 3]
    assert (await store.load("c1")).updates == [b"a", b"b", b"c"]
    other.close()
    await store.close()


async def test_the_wal_restarts_under_constant_writes(tmp_path: Path) -> None:
    """A checkpoint that runs while commits go on can never finish the WAL; without the
    RESTART step the WAL would never start over and its file would grow with every write."""
    store = SqliteStore(tmp_path / "livecart.db", checkpoint_seconds=0.05, restart_frames=256)
    await store.open()
    wal = Path(f"{store.path}-wal")

    def restarts() -> int:  # the WAL header's checkpoint sequence number goes up at each restart
        with wal.open("rb") as f:
            return int.from_bytes(f.read(16)[12:16], "big")
    update = bytes(range(256)) * 8  # 2 KiB
    first = None
    deadline = time.perf_counter() + 60  # only stops a hang: a slow machine takes longer, that is all
    while first is None or restarts() - first < 3:  # without the RESTART step: never, the WAL only grows
        assert time.perf_counter() < deadline, f"the WAL started over {restarts() - (first or 0)} times in 60 s"
        # a busy shop: commits all the time, never a quiet second
        await asyncio.gather(*(store.append(f"cart-{i % 50}", update) for i in range(10)))
        first = restarts() if first is None else first
        await asyncio.sleep(0.001)
    await store.close()


@pytest.mark.parametrize("fsync", ["everysec", "always"])
async def test_both_fsync_modes_keep_every_acknowledged_append(tmp_path: Path, fsync: str) -> None:
    store = SqliteStore(tmp_path / "livecart.db", fsync)
    await store.open()
    assert await asyncio.gather(*(store.append("c1", bytes([i])) for i in range(30))) == list(range(1, 31))
    await store.close()
    again = SqliteStore(tmp_path / "livecart.db", fsync)
    await again.open()
    assert (await again.load("c1")).updates == [bytes([i]) for i in range(30)]
    await again.close()


def test_an_unknown_fsync_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="everysec, always"):
        SqliteStore(tmp_path / "x.db", "sometimes")


async def test_a_reader_elsewhere_holds_the_writes_back_for_at_most_a_moment(tmp_path: Path,
                                                                            long_busy_timeout: None) -> None:
    """An admin's sqlite3 shell in the middle of a read: the WAL cannot start over while it
    reads, so the restart gives up quickly instead of holding the log writer back."""
    store = SqliteStore(tmp_path / "livecart.db", checkpoint_seconds=0.02, restart_frames=1)
    await store.open()
    await store.append("c1", b"x" * 10_000)
    shell = sqlite3.connect(store.path, isolation_level=None)
    shell.execute("BEGIN")
    shell.execute("SELECT COUNT(*) FROM cart_updates").fetchone()  # holds a read snapshot
    worst = 0.0
    for i in range(40):
        started = time.perf_counter()
        await store.append("c1", bytes([i]) * 5_000)
        worst = max(worst, time.perf_counter() - started)
        assert worst < STALL, worst  # the restart gave up (100 ms), not the 60 s busy timeout
        await asyncio.sleep(0.01)
    shell.execute("COMMIT")
    shell.close()
    assert len((await store.load("c1")).updates) == 41
    await store.close()
