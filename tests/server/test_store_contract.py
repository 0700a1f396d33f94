"""The one contract every Store backend passes: the embedded SQLite store and the Redis store."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator, Callable

import pytest

from livecart.server.stock import StockAuthority
from livecart.server.stock.actor import StockActor
from livecart.server.stock.redis import RedisStock
from livecart.server.stock.redis_cluster import RedisClusterStock
from livecart.server.store import CartLog, CartRecord, Store, open_store

Opener = Callable[[], Store]
Backend = tuple[str, str, str]  # kind, url, fsync


@pytest.fixture(params=["sqlite", "sqlite-fsync-always", "redis", "redis-cluster", "redis-cluster-replicas"])
def backend(request, tmp_path: Path) -> Backend:
    """(kind, url, fsync): each `open_store(url)` is a fresh object over the same stored data;
    `fsync` is the SQLite store's mode (Redis ignores it)."""
    if request.param.startswith("sqlite"):
        return "sqlite", "sqlite", "always" if request.param.endswith("always") else "everysec"
    if request.param.startswith("redis-cluster"):  # with replicas, every write also WAITs
        fixture = "redis_cluster_with_replicas" if request.param.endswith("replicas") else "redis_cluster"
        return "redis", request.getfixturevalue(fixture).url, "everysec"
    return "redis", request.getfixturevalue("redis_server").url, "everysec"


@pytest.fixture
def reopen(backend: Backend, tmp_path: Path) -> Opener:
    return lambda: open_store(backend[1], tmp_path, backend[2])


@pytest.fixture
async def store(reopen: Opener) -> AsyncIterator[Store]:
    s = reopen()
    await s.open()
    yield s
    await s.close()


async def stock_over(backend: Backend, store: Store) -> StockAuthority:
    """The stock authority that goes with a store: the embedded actor, or the Redis scripts."""
    if backend[0] == "sqlite":
        stock: StockAuthority = StockActor(store, 60)  # type: ignore[arg-type]
    else:
        stock = (RedisClusterStock if backend[1].startswith("redis+cluster://") else RedisStock)(backend[1], 60)
    await stock.start()
    return stock


async def test_carts_are_created_found_and_listed_by_owner(store: Store) -> None:
    a1 = CartRecord("c1", "alice", "web", 1)
    await store.create_cart(a1)
    await store.create_cart(CartRecord("c2", "bob", "app", 2))
    await store.create_cart(CartRecord("c3", "alice", "kiosk", 3))
    assert await store.get_cart("c1") == a1
    assert await store.get_cart("nope") is None
    assert [c.id for c in await store.list_carts("alice")] == ["c1", "c3"]
    assert len(await store.list_carts()) == 3
    assert await store.list_carts("nobody") == []


async def test_appends_load_in_order_and_concurrent_appends_all_land(store: Store) -> None:
    assert (await store.load("c1")).updates == []
    seqs = await asyncio.gather(*(store.append("c1", bytes([i])) for i in range(50)))
    assert await store.append("c2", b"other") == 1
    assert seqs == list(range(1, 51))  # consecutive per cart: a gap means a missed update
    log = await store.load("c1")
    assert log.updates == [bytes([i]) for i in range(50)] and log.last_seq == 50
    assert await store.load_since("c1", 47) == [(48, b"\x2f"), (49, b"\x30"), (50, b"\x31")]


async def test_appends_to_many_carts_at_once_are_numbered_per_cart(store: Store) -> None:
    pending = [(cart, store.append(cart, f"{cart}{i}".encode())) for i in range(20) for cart in ("a", "b", "c")]
    results = [(cart, await p) for cart, p in pending]
    for cart in ("a", "b", "c"):
        assert [seq for c, seq in results if c == cart] == list(range(1, 21))
        assert (await store.load(cart)).updates == [f"{cart}{i}".encode() for i in range(20)]


async def test_a_never_seen_cart_loads_empty(store: Store) -> None:
    assert await store.load("never") == CartLog(b"", [], 0)
    assert await store.load_since("never", 0) == []


async def test_compaction_replaces_the_prefix_with_a_snapshot(store: Store) -> None:
    seqs = [await store.append("c1", bytes([i])) for i in range(5)]
    await store.compact("c1", b"snap", seqs[2])
    log = await store.load("c1")
    assert log.snapshot == b"snap" and log.updates == [b"\x03", b"\x04"] and log.last_seq == seqs[-1]
    assert await store.load_since("c1", 0) == [(4, b"\x03"), (5, b"\x04")]  # the prefix is gone
    await store.compact("c1", b"old", seqs[1])  # an older snapshot never replaces a newer one
    assert (await store.load("c1")).snapshot == b"snap"
    assert await store.append("c1", b"next") == 6  # numbering goes on after compaction


async def test_binary_payloads_round_trip_byte_for_byte(store: Store) -> None:
    blob = bytes(range(256)) * 4
    assert await store.append("c1", blob) == 1
    await store.compact("c1", blob[::-1], 1)
    await store.append("c1", b"\x00\xff\r\n")
    log = await store.load("c1")
    assert (log.snapshot, log.updates, log.last_seq) == (blob[::-1], [b"\x00\xff\r\n"], 2)


async def test_products_round_trip(store: Store) -> None:
    await store.put_product("MUG", {"name": "Mug", "price": 900})
    await store.put_product("MUG", {"name": "Big mug", "price": 1200})
    assert await store.list_products() == {"MUG": {"name": "Big mug", "price": 1200}}


async def test_data_survives_reopening(reopen: Opener) -> None:
    first = reopen()
    await first.open()
    await first.create_cart(CartRecord("c1", "alice", "web", 1))
    await first.append("c1", b"u1")
    await first.close()
    second = reopen()
    await second.open()
    assert (await second.load("c1")).updates == [b"u1"]
    assert await second.append("c1", b"u2") == 2
    assert await second.get_cart("c1") is not None
    await second.close()


async def test_reopening_after_full_compaction_keeps_numbering(reopen: Opener) -> None:
    first = reopen()
    await first.open()
    for i in range(3):
        await first.append("c1", bytes([i]))
    await first.compact("c1", b"all", 3)  # nothing is left in the log
    await first.close()
    second = reopen()
    await second.open()
    assert await second.load("c1") == CartLog(b"all", [], 3)
    assert await second.append("c1", b"next") == 4  # not 1: a reader would take it for old news
    assert await second.load_since("c1", 3) == [(4, b"next")]
    await second.close()


async def test_import_catalog_refuses_on_hand_below_what_carts_hold(
        backend: Backend, store: Store) -> None:
    await store.import_catalog({"MUG": {"name": "Mug", "price": 900}}, {"MUG": 5})
    stock = await stock_over(backend, store)
    assert (await stock.reserve("c1", "l1", "MUG", 3)).qty == 3
    await stock.stop()
    with pytest.raises(ValueError, match="MUG"):
        await store.import_catalog({"MUG": {"name": "Mug", "price": 1}, "TEE": {"name": "Tee", "price": 2}},
                                   {"TEE": 4, "MUG": 2})
    assert await store.list_products() == {"MUG": {"name": "Mug", "price": 900}}  # nothing written
    await store.import_catalog({"MUG": {"name": "Mug", "price": 1}}, {"MUG": 3})  # = held: allowed
    stock = await stock_over(backend, store)
    assert (await stock.levels(["MUG", "TEE"]))["MUG"].to_json() == {"onHand": 3, "held": 3, "available": 0}
    assert (await stock.levels(["TEE"]))["TEE"].on_hand == 0
    await stock.stop()


async def test_records_put_get_list_take_and_expire(store: Store) -> None:
    # A record with a TTL is a record like any other until its time is up (a TTL a slow machine
    # cannot outrun); the one that must expire is written just before the wait for it.
    await store.put_record("invite", "ABC123", {"cartId": "c1"})
    await store.put_record("invite", "ABD999", {"cartId": "c2"}, ttl=600)
    await store.put_record("grant", "bob|c1", {"at": 1})
    assert await store.get_record("invite", "ABC123") == {"cartId": "c1"}
    assert set(await store.list_records("invite", "AB")) == {"ABC123", "ABD999"}
    assert await store.list_records("grant") == {"bob|c1": {"at": 1}}
    taken = await asyncio.gather(*(store.take_record("invite", "ABC123") for _ in range(5)))
    assert taken.count({"cartId": "c1"}) == 1 and taken.count(None) == 4  # single use
    await store.put_record("invite", "ABE000", {"cartId": "c3"}, ttl=0.05)
    await asyncio.sleep(0.1)
    assert await store.get_record("invite", "ABE000") is None  # expired
    assert await store.take_record("invite", "ABE000") is None
    assert set(await store.list_records("invite", "AB")) == {"ABD999"}
    await store.delete_record("grant", "bob|c1")
    assert await store.get_record("grant", "bob|c1") is None


async def test_hits_count_within_a_window(store: Store) -> None:
    # Counting in a window no slow machine outlasts; a window's end with one that is surely over.
    assert [await store.hit("guess:bob", 600) for _ in range(3)] == [1, 2, 3]
    assert await store.hit("guess:eve", 600) == 1
    assert await store.hit("guess:ann", 0.2) == 1
    await asyncio.sleep(0.25)
    assert await store.hit("guess:ann", 0.2) == 1
    assert await store.hit("guess:bob", 600) == 4


async def test_locks_are_exclusive_until_released_or_expired(store: Store) -> None:
    # Leases no slow machine outlasts, but for the one that must run out.
    assert await store.lock("order:1", "a", 600)
    assert not await store.lock("order:1", "b", 600)
    await store.unlock("order:1", "b")  # not b's to give back
    assert not await store.lock("order:1", "b", 600)
    await store.unlock("order:1", "a")
    assert await store.lock("order:1", "b", 0.1)
    await asyncio.sleep(0.15)
    assert await store.lock("order:1", "c", 1)  # b's lease ran out
