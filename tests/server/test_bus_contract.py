"""The one contract every shared Bus backend passes: Redis pub/sub and Redis Cluster sharded pub/sub."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator, Callable

import pytest

from livecart.server.bus import Bus, CartMessage, open_bus

BOUND = 30  # seconds: a generous bound for a state to be reached, never a speed budget


@pytest.fixture(params=["redis", "redis-cluster"])
def bus_url(request) -> str:
    fixture = "redis_server" if request.param == "redis" else "redis_cluster"
    return request.getfixturevalue(fixture).url


@pytest.fixture
async def buses(bus_url: str) -> AsyncIterator[Callable[[], Bus]]:
    """Opens buses (each one a process) over the same Redis; all stopped at the end."""
    opened: list[Bus] = []

    def make() -> Bus:
        bus = open_bus(bus_url)
        opened.append(bus)
        return bus

    yield make
    for bus in opened:
        await bus.stop()


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(BOUND):
        while not check():
            await asyncio.sleep(0.02)


async def test_a_cart_update_reaches_the_other_processes_with_the_cart_open_in_order(buses) -> None:
    a, b, c = buses(), buses(), buses()
    for bus in (a, b, c):
        await bus.start()
    got_a: list[CartMessage] = []
    got_b: list[CartMessage] = []
    got_c: list[CartMessage] = []
    await a.join_cart("c1", got_a.append)
    await b.join_cart("c1", got_b.append)
    await c.join_cart("other", got_c.append)
    for seq in range(1, 101):
        a.publish_cart("c1", "update", seq, bytes([seq]))
    await until(lambda: len(got_b) == 100)
    assert [m.seq for m in got_b] == list(range(1, 101))  # one sender's messages stay in order
    assert got_b[0] == CartMessage(a.process_id, "update", 1, b"\x01", got_b[0].sent)
    assert isinstance(got_b[0].sent, int)  # when it was sent (Unix ms): what the bus lag is measured from
    await asyncio.sleep(0.3)  # nothing more is on its way: the sender and other carts hear none
    assert got_a == [] and got_c == []


async def test_after_leaving_a_cart_its_messages_stop(buses) -> None:
    a, b = buses(), buses()
    await a.start()
    await b.start()
    got: list[CartMessage] = []
    await b.join_cart("c1", got.append)
    a.publish_cart("c1", "awareness", 0, b"x")
    await until(lambda: len(got) == 1)
    await b.leave_cart("c1")
    a.publish_cart("c1", "awareness", 0, b"y")
    await b.join_cart("c2", got.append)  # a later message on another cart proves the first was not held up
    a.publish_cart("c2", "awareness", 0, b"z")
    await until(lambda: len(got) == 2)
    assert [m.payload for m in got] == [b"x", b"z"]


async def test_events_reach_every_process_listening_on_the_topic(buses) -> None:
    a, b, c = buses(), buses(), buses()
    heard_b: list[dict] = []
    heard_c: list[dict] = []
    b.on_event("stock", heard_b.append)
    c.on_event("stock", heard_c.append)
    c.on_event("orders", heard_c.append)
    for bus in (a, b, c):
        await bus.start()
    a.publish_event("stock", {"sku": "A", "available": 3})
    a.publish_event("orders", {"id": "o1"})
    await until(lambda: len(heard_b) == 1 and len(heard_c) == 2)
    assert heard_b == [{"sku": "A", "available": 3}]
    assert sorted(heard_c, key=str) == sorted([{"sku": "A", "available": 3}, {"id": "o1"}], key=str)


async def test_many_carts_spread_over_the_cluster_each_hear_their_own(buses) -> None:
    a, b = buses(), buses()
    await a.start()
    await b.start()
    got: dict[str, list[bytes]] = {f"cart{i}": [] for i in range(40)}
    for cart_id, inbox in got.items():
        await b.join_cart(cart_id, lambda m, inbox=inbox: inbox.append(m.payload))
    for cart_id in got:
        a.publish_cart(cart_id, "update", 1, cart_id.encode())
    await until(lambda: all(got.values()))
    assert got == {cart_id: [cart_id.encode()] for cart_id in got}


async def test_every_message_heard_is_reported_with_its_topic_and_age(buses) -> None:
    a, b = buses(), buses()
    heard: list[tuple[str, float]] = []
    events: list[dict] = []
    b.heard.append(lambda topic, age: heard.append((topic, age)))
    b.on_event("stock", events.append)
    await a.start()
    await b.start()
    await b.join_cart("c1", lambda m: None)
    a.publish_cart("c1", "update", 1, b"x")
    a.publish_event("stock", {"SKU-1": 3})
    await until(lambda: len(heard) == 2)
    assert sorted(topic for topic, _ in heard) == ["cart", "stock"]  # the cart's id is no topic: bounded
    assert all(0 <= age < BOUND for _, age in heard)
    assert events == [{"SKU-1": 3}]  # the send time travels beside the event, not in it


async def test_a_process_of_the_version_before_and_this_one_understand_each_other(redis_server) -> None:
    """Mid-upgrade, processes of two versions share the bus: this one reads what the older one sends
    (no send time: nothing measured), and what this one sends still reads as the older one reads it."""
    import msgpack
    import redis.asyncio as aioredis

    from livecart.server.store.redis import split_prefix

    prefix = split_prefix(redis_server.url)[1]  # the channels as every version names them
    bus = open_bus(redis_server.url)
    raw = aioredis.Redis.from_url(redis_server.url)
    listener = raw.pubsub()
    try:
        heard: list[tuple[str, float]] = []
        got: list[CartMessage] = []
        bus.heard.append(lambda topic, age: heard.append((topic, age)))
        await bus.start()
        await bus.join_cart("c1", got.append)
        await raw.publish(f"{prefix}{{c:c1}}:bus", msgpack.packb(("older-process", "update", 7, b"y")))  # as it sends
        await until(lambda: len(got) == 1)
        assert got == [CartMessage("older-process", "update", 7, b"y", None)] and heard == []

        await listener.subscribe(f"{prefix}{{c:c2}}:bus", f"{prefix}events:stock")
        sent: list[bytes] = []

        async def read(kind: str, count: int) -> None:
            seen = 0
            while seen < count:
                message = await listener.get_message(timeout=1.0)
                if message is not None and message["type"] == kind:
                    seen += 1
                    if kind == "message":
                        sent.append(message["data"])
        await asyncio.wait_for(read("subscribe", 2), BOUND)  # listening before anything is sent
        bus.publish_cart("c2", "awareness", 0, b"z")
        bus.publish_event("stock", {"SKU-1": 3})
        await asyncio.wait_for(read("message", 2), BOUND)
        origin, kind, seq, payload = msgpack.unpackb(sent[0])  # the older version's reading
        assert origin != "older-process" and (kind, seq, payload) == ("awareness", 0, b"z")  # not its own: applied
        assert msgpack.unpackb(sent[1]).get("SKU-1") == 3  # it reads the keys it knows
    finally:
        await listener.aclose()
        await raw.aclose()
        await bus.stop()
