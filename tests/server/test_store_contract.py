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
from livecart.server.store.index import CustomerQuery, OrderQuery, Purchase, ShopIndex, open_index

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


# -- the shop index: orders and customers (server/store/index.py), one suite for every backend -------------

@pytest.fixture
async def index(store: Store) -> ShopIndex:
    index = open_index(store)
    await index.open()
    return index


def an_order(n: int, customer: str = "ada", status: str = "confirmed", at: int | None = None) -> dict:
    return {"id": f"o-{n:03d}", "orderId": f"o-{n:03d}", "customerId": customer, "cartId": f"c-{n}",
            "status": status, "state": status, "createdAt": at if at is not None else 1_000 + n, "total": 100 * n}


async def test_orders_list_newest_first_with_filters(index: ShopIndex) -> None:
    for n in range(1, 8):
        await index.put_order(an_order(n, "ada" if n % 2 else "bob", "confirmed" if n < 5 else "awaiting_payment"))
    assert [o["id"] for o in (await index.list_orders(OrderQuery())).items] == [f"o-{n:03d}" for n in range(7, 0, -1)]
    assert [o["id"] for o in (await index.list_orders(OrderQuery(customer="bob"))).items] == ["o-006", "o-004", "o-002"]
    assert [o["id"] for o in (await index.list_orders(OrderQuery(status="awaiting_payment"))).items] == [
        "o-007", "o-006", "o-005"]
    assert [o["id"] for o in (await index.list_orders(OrderQuery(since=1_005))).items] == ["o-007", "o-006", "o-005"]
    both = await index.list_orders(OrderQuery(customer="ada", status="confirmed"))
    assert [o["id"] for o in both.items] == ["o-003", "o-001"] and both.next is None
    # a status change moves the order between the status lists; it is stored whole
    await index.put_order({**an_order(6, "bob"), "status": "dispatched", "tracking": {"carrier": "DHL"}})
    dispatched = await index.list_orders(OrderQuery(status="dispatched"))
    assert [o["tracking"] for o in dispatched.items] == [{"carrier": "DHL"}]
    assert "o-006" not in [o["id"] for o in (await index.list_orders(OrderQuery(status="awaiting_payment"))).items]


async def test_order_pages_are_stable_under_inserts(index: ShopIndex) -> None:
    for n in range(1, 26):
        await index.put_order(an_order(n, at=5_000))  # all in one millisecond: the id breaks the tie
    first = await index.list_orders(OrderQuery(limit=10))
    assert len(first.items) == 10 and first.next
    for n in range(26, 31):  # newer orders arrive between two pages
        await index.put_order(an_order(n, at=6_000))
    seen = [o["id"] for o in first.items]
    cursor = first.next
    while cursor:
        page = await index.list_orders(OrderQuery(limit=10, cursor=cursor))
        seen += [o["id"] for o in page.items]
        cursor = page.next
    assert seen == [f"o-{n:03d}" for n in range(25, 0, -1)]  # each old order once, in order


async def test_customers_profiles_and_purchases(index: ShopIndex) -> None:
    assert await index.get_customer("ada") is None
    ada = await index.put_customer("ada", {"name": "Ada Lovelace", "phone": "+44 20 7946 0958"})
    assert ada == {"id": "ada", "name": "Ada Lovelace", "email": None, "phone": "+44 20 7946 0958",
                   "marketingConsent": False, "orders": 0, "spent": 0, "lastOrderAt": None}
    assert await index.add_purchase(Purchase("ada", "o-1", 2_000, 1500, ("MUG-LAST", "TEE"), ("kitchen",),
                                             name="Someone Else", email="ada@example.com"))
    assert not await index.add_purchase(Purchase("ada", "o-1", 2_000, 1500, ("MUG-LAST",)))  # counted once
    assert await index.add_purchase(Purchase("ada", "o-2", 1_500, 500, ("TEE",)))
    ada = await index.get_customer("ada")
    # a purchase fills what the profile lacks (the email), never what it has (the name)
    assert ada == {"id": "ada", "name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0958",
                   "marketingConsent": False, "orders": 2, "spent": 2000, "lastOrderAt": 2_000}
    ada = await index.put_customer("ada", {"name": "Ada King", "marketingConsent": True})
    assert (ada["name"], ada["email"], ada["marketingConsent"]) == ("Ada King", "ada@example.com", True)


async def test_a_cancelled_order_no_longer_counts_in_orders_or_spend(index: ShopIndex) -> None:
    paid = Purchase("ada", "o-1", 2_000, 1500, ("MUG-LAST",))
    await index.add_purchase(paid)
    await index.add_purchase(Purchase("ada", "o-2", 3_000, 500, ("TEE",)))
    assert await index.cancel_purchase(paid)
    assert not await index.cancel_purchase(paid)  # taken off once
    assert not await index.cancel_purchase(Purchase("ada", "o-9", 1, 700, ()))  # never counted: nothing to take off
    assert not await index.add_purchase(paid)  # a late repeat of its payment does not count it again
    ada = await index.get_customer("ada")
    assert (ada["orders"], ada["spent"]) == (1, 500)
    # what they ordered still says what they like: found by it (a mailing re-checks consent, not orders)
    assert await ids(index, bought=("MUG-LAST",)) == ["ada"]


async def ids(index: ShopIndex, **query) -> list[str]:
    return [c["id"] for c in (await index.search_customers(CustomerQuery(**query))).items]


async def test_customer_search_by_text_product_category_and_date(index: ShopIndex) -> None:
    await index.put_customer("ada", {"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0958"})
    await index.put_customer("adam", {"name": "Adam Smith", "email": "adam@example.com"})
    await index.put_customer("grace", {"name": "Grace Hopper", "email": "grace@navy.mil", "phone": "555 0100"})
    await index.put_customer("zoe", {"name": "Zoë Ádler", "email": "Zoe@Example.com"})
    await index.add_purchase(Purchase("ada", "o-1", 1_000, 900, ("MUG-LAST",), ("kitchen",)))
    await index.add_purchase(Purchase("grace", "o-2", 3_000, 1500, ("TEE",), ("clothing",)))
    await index.add_purchase(Purchase("adam", "o-3", 5_000, 900, ("MUG-LAST", "TEE"), ("kitchen", "clothing")))
    assert await ids(index, q="Ada") == ["ada", "adam"]  # a word's start, any case
    assert await ids(index, q="ada@example.com") == ["ada"]  # an email whole: nobody else's
    assert await ids(index, q="lovelace ada") == ["ada"]  # every word must match
    assert await ids(index, q="ADLER") == ["zoe"] and await ids(index, q="zoë") == ["zoe"]
    assert await ids(index, q="zoe@example.com") == ["zoe"]
    assert await ids(index, q="2079") == ["ada"] and await ids(index, q="+44 20 7946") == ["ada"]
    assert await ids(index, q="020 7946 0958") == ["ada"] and await ids(index, q="0958") == ["ada"]
    assert await ids(index, q="555-0100") == ["grace"]
    assert await ids(index, q="navy") == ["grace"]
    assert await ids(index, q="nobody") == []
    assert await ids(index, bought=("MUG-LAST",)) == ["ada", "adam"]
    assert await ids(index, bought=("MUG-LAST", "TEE")) == ["ada", "adam", "grace"]
    assert await ids(index, bought=("MUG-LAST",), since=2_000) == ["adam"]
    assert await ids(index, category="clothing") == ["adam", "grace"]
    assert await ids(index, category="clothing", q="grace") == ["grace"]
    assert await ids(index, since=3_000) == ["adam", "grace"]
    assert await ids(index) == ["ada", "adam", "grace", "zoe"]
    found = (await index.search_customers(CustomerQuery(q="grace"))).items
    assert found == [{"id": "grace", "name": "Grace Hopper", "email": "grace@navy.mil", "phone": "555 0100",
                      "marketingConsent": False, "orders": 1, "spent": 1500, "lastOrderAt": 3_000}]
    # renamed: found by the new name only
    await index.put_customer("grace", {"name": "Amazing Grace"})
    assert await ids(index, q="hopper") == [] and await ids(index, q="amazing") == ["grace"]


async def test_customer_search_pages_by_id(index: ShopIndex) -> None:
    for n in range(12):
        await index.put_customer(f"c{n:02d}", {"name": f"Pat Number{n}"})
        await index.add_purchase(Purchase(f"c{n:02d}", f"o{n}", 1_000 + n, 100, ("TEE",)))
    for query in ({"q": "pat"}, {"bought": ("TEE",)}, {}):
        seen, cursor = [], None
        while True:
            page = await index.search_customers(CustomerQuery(limit=5, cursor=cursor, **query))
            seen += [c["id"] for c in page.items]
            if page.next is None:
                break
            cursor = page.next
        assert seen == [f"c{n:02d}" for n in range(12)], query


async def test_bulk_writes_count_each_order_once_and_find_like_single_ones(index: ShopIndex) -> None:
    await index.put_customers({"ada": {"name": "Ada Lovelace"}, "bob": {"name": "Bob Page", "email": "bob@example.com"}})
    batch = [Purchase("ada", "o-1", 1_000, 100, ("MUG",), ("kitchen",), email="ada@example.com"),
             Purchase("ada", "o-2", 2_000, 200, ("TEE",)),  # the same customer twice in one batch
             Purchase("bob", "o-3", 3_000, 300, ("MUG",)),
             Purchase("ada", "o-1", 1_000, 100, ("MUG",))]  # and an order twice
    assert await index.add_purchases(batch) == 3
    assert await index.add_purchases(batch[:2]) == 0
    ada = await index.get_customer("ada")
    assert (ada["orders"], ada["spent"], ada["lastOrderAt"], ada["email"]) == (2, 300, 2_000, "ada@example.com")
    assert await ids(index, bought=("MUG",)) == ["ada", "bob"] and await ids(index, q="ada@example.com") == ["ada"]
