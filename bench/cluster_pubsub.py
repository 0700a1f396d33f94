"""Redis CPU of cart fan-out in a 3-master cluster: classic PUBLISH (copied to every node) against
sharded SPUBLISH (only the cart's node). Prints Redis CPU-s per 1k messages and the ratio.

    python bench/cluster_pubsub.py [--carts 300] [--processes 4] [--messages 30000]

Each "process" is one subscriber connection holding the channels of the carts it serves (carts
spread by hash, as a balancer hashing the cart id would); every message is one cart update.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncCluster

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from redis_cluster import RedisCluster  # noqa: E402  (the tests' helper: a real cluster on loopback)


def redis_cpu(ports: list[int]) -> float:
    total = 0.0
    for port in ports:
        info = redis.Redis(port=port).info("cpu")
        total += info["used_cpu_sys"] + info["used_cpu_user"]
    return total


async def run(mode: str, cluster: RedisCluster, carts: list[str], processes: int, messages: int) -> tuple[float, int]:
    client = AsyncCluster(host="127.0.0.1", port=cluster.ports[0])
    await client.initialize()
    served = [carts[i::processes] for i in range(processes)]
    received = 0
    subs = []
    for own in served:
        if mode == "sharded":
            ps = client.pubsub()
            await ps.ssubscribe(*(f"{{c:{c}}}:bus" for c in own))
        else:  # classic pub/sub: one connection to any node hears every node's PUBLISH
            node = aioredis.Redis(port=random.choice(cluster.ports))
            ps = node.pubsub()
            await ps.subscribe(*(f"{{c:{c}}}:bus" for c in own))
        subs.append(ps)

    async def drain(ps) -> None:
        nonlocal received
        get = ps.get_sharded_message if mode == "sharded" else ps.get_message
        while True:
            m = await get(ignore_subscribe_messages=True, timeout=0.5)
            if m is not None:
                received += 1
    drains = [asyncio.ensure_future(drain(ps)) for ps in subs]
    await asyncio.sleep(0.5)
    before = redis_cpu(cluster.ports)
    payload = b"x" * 64
    publishers = [aioredis.Redis(port=p) for p in cluster.ports]
    sent = 0
    while sent < messages:
        # PUBLISH may go to any node (the cluster copies it to all); redis-py's cluster pipeline
        # refuses it, so classic publishes go through one node's own client, taking turns.
        sender = client if mode == "sharded" else publishers[sent // 500 % len(publishers)]
        async with sender.pipeline(transaction=False) as pipe:
            for _ in range(500):
                channel = f"{{c:{random.choice(carts)}}}:bus"
                if mode == "sharded":
                    pipe.spublish(channel, payload)
                else:
                    pipe.publish(channel, payload)
            await pipe.execute()
        sent += 500
        print(f"\r  {mode}: {sent}/{messages} sent", end="", file=sys.stderr, flush=True)
    deadline = time.monotonic() + 30
    while received < sent and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    cpu = redis_cpu(cluster.ports) - before
    print(file=sys.stderr)
    for d in drains:
        d.cancel()
    for ps in subs:
        await ps.aclose()
    await client.aclose()
    for p in publishers:
        await p.aclose()
    return cpu, received


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--carts", type=int, default=300)
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--messages", type=int, default=30000)
    args = ap.parse_args()
    carts = [f"cart{i}" for i in range(args.carts)]
    with tempfile.TemporaryDirectory() as tmp:
        print("starting a 3-master cluster…", file=sys.stderr)
        cluster = RedisCluster(Path(tmp)).start()
        try:
            results = {mode: await run(mode, cluster, carts, args.processes, args.messages)
                       for mode in ("classic", "sharded")}
        finally:
            cluster.stop()
    print(f"{args.carts} carts, {args.processes} subscriber processes, {args.messages} messages, 3 masters")
    print("| fan-out | Redis CPU-s per 1k msgs | delivered |")
    print("|---|---|---|")
    for mode, (cpu, received) in results.items():
        print(f"| {'PUBLISH' if mode == 'classic' else 'SPUBLISH'} | {cpu / args.messages * 1000:.4f} | {received}/{args.messages} |")
    ratio = results["sharded"][0] / results["classic"][0] if results["classic"][0] else float("nan")
    print(f"SPUBLISH / PUBLISH Redis CPU: {ratio:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
