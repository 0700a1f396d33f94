"""Redis Cluster end to end: livecart processes on a real cluster, and a master killed (SIGKILL) under
cart edits and stock reservations: its replica takes over, nothing acknowledged lost, nothing oversold."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from livecart.server.stock.redis_cluster import RedisClusterStock
from livecart.server.store import open_store
from redis_cluster import RedisCluster

ON_HAND = 40
CARTS = 12
SHOPPERS = 80  # each wants one unit: twice what there is
BOUND = 90  # seconds: generous bound for the cluster to fail over and the load to finish


async def test_a_master_failover_loses_nothing_acknowledged_and_oversells_nothing(
        redis_cluster_with_replicas: RedisCluster, tmp_path: Path) -> None:
    cluster = redis_cluster_with_replicas
    store = open_store(cluster.url, tmp_path)
    await store.open()
    stock = RedisClusterStock(cluster.url, 600)
    await stock.start()
    await stock.set_on_hand("MUG", ON_HAND)
    victim = cluster.master_of("livecart:{s:MUG}:stock")  # the SKU's master, and some carts'

    acked: list[tuple[str, int, bytes]] = []
    granted: dict[str, int] = {}  # shopper -> units its last acknowledged decision held
    failed = 0
    after_kill = asyncio.Event()

    async def edit(cart: str) -> None:
        nonlocal failed
        n = 0
        while not (after_kill.is_set() and n >= 60):
            payload = f"{cart}:{n}".encode()
            try:
                acked.append((cart, await store.append(cart, payload), payload))
                n += 1
            except Exception:  # refused during the failover: not acknowledged, so not counted
                failed += 1
                await asyncio.sleep(0.05)

    async def shop(shopper: str) -> None:
        nonlocal failed
        while True:
            try:
                granted[shopper] = (await stock.reserve(shopper, "l1", "MUG", 1)).qty
                return
            except Exception:
                failed += 1
                await asyncio.sleep(0.05)

    async def kill_when_busy() -> None:
        while len(acked) < 200:
            await asyncio.sleep(0.01)
        cluster.kill(victim)  # SIGKILL: no shutdown, no last sync
        after_kill.set()

    carts = [f"cart{i}" for i in range(CARTS)]
    async with asyncio.timeout(BOUND):
        await asyncio.gather(kill_when_busy(), *(edit(c) for c in carts),
                             *(shop(f"s{i}") for i in range(SHOPPERS)))
    await stock.stop()
    await store.close()

    # A fresh client on the promoted cluster: every acknowledged update is there, at its seq.
    store = open_store(cluster.url, tmp_path)
    await store.open()
    stock = RedisClusterStock(cluster.url, 600)
    try:
        logs = {c: await store.load(c) for c in carts}
        lost = [(c, seq) for c, seq, payload in acked
                if seq > len(logs[c].updates) or logs[c].updates[seq - 1] != payload]
        assert lost == [], f"{len(lost)} acknowledged appends lost: {lost[:5]} {[(c, len(logs[c].updates), logs[c].last_seq, logs[c].updates[:3]) for c in carts[:3]]} {[a for a in acked if a[0] == 'cart0'][:5]}"
        level = (await stock.levels(["MUG"]))["MUG"]
        assert level.on_hand == ON_HAND
        assert sum(granted.values()) <= ON_HAND  # never promised more than there is
        assert level.held == sum(granted.values())  # every acknowledged hold survived the failover
        assert len(granted) == SHOPPERS
    finally:
        await store.close()
        await stock.r.aclose()


async def test_an_append_waits_for_the_replica_even_when_the_clients_slot_map_lists_none(
        redis_cluster_with_replicas: RedisCluster, tmp_path: Path) -> None:
    """Cluster nodes learn of each other's replicas by gossip, so a client may read a slot map that
    lists none (a store opened just after the cluster formed, or just after a replica joined). Its
    appends must still wait for the replica the master has: with that replica paused, an append is
    refused instead of acknowledged on the master alone (where a failover would lose it)."""
    cluster = redis_cluster_with_replicas
    store = open_store(cluster.url, tmp_path)
    await store.open()
    replica = cluster.replica_of(cluster.master_of("livecart:{c:cart0}:log"))
    try:
        assert await store.append("cart0", b"first") == 1  # the replica is there: acknowledged
        slots = store.r.nodes_manager.slots_cache
        for slot, nodes in slots.items():  # the map as a node that had not heard of replicas gives it
            slots[slot] = nodes[:1]
        cluster.pause(replica)
        try:
            with pytest.raises(Exception):
                await store.append("cart0", b"second")
        finally:
            cluster.pause(replica, False)
        assert await store.append("cart0", b"third") >= 2
    finally:
        await store.close()


async def test_processes_on_a_cluster_share_carts_and_stock(redis_cluster: RedisCluster, tmp_path: Path) -> None:
    """`livecart serve --store/--bus redis+cluster://…`: clients of one cart on two processes
    converge over sharded pub/sub, and a last-units race across them oversells nothing."""
    import aiohttp

    from processes import ServerProcess
    from test_scaleout import add, client, new_cart, setup_shop
    from yclient import eventually

    url = redis_cluster.url
    procs = [ServerProcess(tmp_path / f"data{i}", "--store", url, "--bus", url).start() for i in range(2)]
    try:
        async with aiohttp.ClientSession() as http:
            await setup_shop(http, procs[0].base, on_hand=3)
            clients = []
            for i in range(6):
                cart = await new_cart(http, procs[i % 2].base, f"s{i}")
                pair = (await client(http, procs[0], cart, f"s{i}"), await client(http, procs[1], cart, f"s{i}"))
                add(pair[i % 2], "l1", who=f"s{i}")
                clients.append(pair)
            await eventually(lambda: all("l1" in a.lines and "l1" in b.lines for a, b in clients),
                             what="every cart's line on both processes")

            def holds() -> list[dict | None]:
                return [a.snapshot()["server"]["holds"].get("l1") for a, _ in clients]
            await eventually(lambda: all(holds()), what="all six decided")
            assert sum(h["qty"] for h in holds()) == 3
            for a, b in clients:
                await a.close()
                await b.close()
    finally:
        for p in procs:
            p.stop()
