"""The one contract every Store backend passes (SQLite now; Redis joins the parameter list)."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator

import pytest

from livecart.server.store import CartRecord, Store, open_store


@pytest.fixture(params=["sqlite"])
async def store(request, tmp_path: Path) -> AsyncIterator[Store]:
    s = open_store(request.param, tmp_path)
    await s.open()
    yield s
    await s.close()


async def test_carts_are_created_found_and_listed_by_owner(store: Store) -> None:
    a1 = CartRecord("c1", "alice", "web", 1)
    await store.create_cart(a1)
    await store.create_cart(CartRecord("c2", "bob", "app", 2))
    await store.create_cart(CartRecord("c3", "alice", "kiosk", 3))
    assert await store.get_cart("c1") == a1
    assert await store.get_cart("nope") is None
    assert [c.id for c in await store.list_carts("alice")] == ["c1", "c3"]
    assert len(await store.list_carts()) == 3


async def test_appends_load_in_order_and_concurrent_appends_all_land(store: Store) -> None:
    assert (await store.load("c1")).updates == []
    seqs = await asyncio.gather(*(store.append("c1", bytes([i])) for i in range(50)))
    assert await store.append("c2", b"other") == 1
    assert seqs == list(range(1, 51))  # consecutive per cart: a gap means a missed update
    log = await store.load("c1")
    assert log.updates == [bytes([i]) for i in range(50)] and log.last_seq == 50
    assert await store.load_since("c1", 47) == [(48, b"\x2f"), (49, b"\x30"), (50, b"\x31")]


async def test_compaction_replaces_the_prefix_with_a_snapshot(store: Store) -> None:
    seqs = [await store.append("c1", bytes([i])) for i in range(5)]
    await store.compact("c1", b"snap", seqs[2])
    log = await store.load("c1")
    assert log.snapshot == b"snap" and log.updates == [b"\x03", b"\x04"] and log.last_seq == seqs[-1]
    await store.compact("c1", b"old", seqs[1])  # an older snapshot never replaces a newer one
    assert (await store.load("c1")).snapshot == b"snap"
    assert await store.append("c1", b"next") == 6  # numbering goes on after compaction


async def test_products_round_trip(store: Store) -> None:
    await store.put_product("MUG", {"name": "Mug", "price": 900})
    await store.put_product("MUG", {"name": "Big mug", "price": 1200})
    assert await store.list_products() == {"MUG": {"name": "Big mug", "price": 1200}}


async def test_data_survives_reopening(tmp_path: Path) -> None:
    first = open_store("sqlite", tmp_path)
    await first.open()
    await first.create_cart(CartRecord("c1", "alice", "web", 1))
    await first.append("c1", b"u1")
    await first.close()
    second = open_store("sqlite", tmp_path)
    await second.open()
    assert (await second.load("c1")).updates == [b"u1"]
    assert await second.append("c1", b"u2") == 2
    assert await second.get_cart("c1") is not None
    await second.close()
