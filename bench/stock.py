"""Stock benchmark: actor decisions/s with persistence, end-to-end reservations/s over websockets,
and sold-out push latency to many /ws/stock subscribers. Prints figures; asserts nothing."""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _server import cpu_seconds, livecart_server, percentile, token  # noqa: E402
from livecart.crdt.cart import new_line  # noqa: E402
from livecart.server.stock.actor import StockActor  # noqa: E402
from livecart.server.store import open_store  # noqa: E402
from yclient import YClient, eventually  # noqa: E402


def progress(text: str) -> None:
    print(f"\r  {text}", end="", file=sys.stderr, flush=True)


async def actor_alone(decisions: int, in_flight: int, fsync: str) -> dict[str, float]:
    """Reserve/release pairs through the actor's queue, persisted in SQLite (`--fsync` mode)."""
    store = open_store("sqlite", Path(tempfile.mkdtemp(prefix="bench-stock-")), fsync)
    await store.open()
    actor = StockActor(store, hold_ttl=900)
    await actor.start()
    for sku in range(100):
        await actor.set_on_hand(f"S{sku}", 1_000_000)
    done = 0

    async def worker(w: int) -> None:
        nonlocal done
        i = 0
        while done < decisions:
            key = f"c{w}", f"l{i % 10}"
            await actor.reserve(*key, f"S{(w + i) % 100}", 1 + i % 3)
            await actor.release(*key)
            done += 2
            i += 1
            if done % 5000 < 2:
                progress(f"actor: {done:,}/{decisions:,} decisions")
    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(in_flight)))
    elapsed = time.perf_counter() - start
    await actor.stop()
    await store.close()
    return {"decisions": done, "seconds": elapsed, "per_second": done / elapsed}


async def end_to_end(base: str, pid: int, carts: int, rounds: int) -> dict[str, float]:
    """Clients add and remove lines; a reservation counts when its hold shows in the client's doc."""
    admin = token("root", "admin")
    latencies: list[float] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"},
                                     connector=aiohttp.TCPConnector(limit=0)) as s:
        await s.put(f"{base}/api/catalog/E2E", json={"name": "E2E", "price": 100})
        await s.put(f"{base}/api/stock/E2E", json={"onHand": 1_000_000})
        clients = []
        for c in range(carts):
            async with s.post(f"{base}/api/carts", json={"channel": "web", "owner": f"u{c}"}) as r:
                cart = (await r.json())["cartId"]
            url = base.replace("http", "ws") + f"/ws/carts/{cart}?token={admin}"
            clients.append(await YClient(s, url).connect())
        for client in clients:
            await client.wait_synced()
        cpu0, start = cpu_seconds(pid), time.perf_counter()

        async def shopper(client: YClient, c: int) -> None:
            for r in range(rounds):
                line = f"l{r}"
                sent = time.perf_counter()
                client.lines[line] = new_line("E2E", 1 + r % 3, f"u{c}", "web", int(time.time() * 1000))
                await eventually(lambda: client.server.get("holds", {}).get(line) is not None, timeout=30)
                latencies.append(time.perf_counter() - sent)
                if r >= 5:
                    del client.lines[f"l{r - 5}"]  # keep carts small: releases count as decisions too
            progress(f"end-to-end: cart {c + 1}/{carts} done")
        await asyncio.gather(*(shopper(cl, i) for i, cl in enumerate(clients)))
        elapsed, cpu = time.perf_counter() - start, cpu_seconds(pid) - cpu0
        for client in clients:
            await client.close()
    n = carts * rounds
    return {"reservations": n, "per_second": n / elapsed, "p50_ms": percentile(latencies, 50) * 1e3,
            "p99_ms": percentile(latencies, 99) * 1e3, "server_cpu_ms_per_reservation": cpu / n * 1e3}


async def sold_out_push(base: str, subscribers: int, rounds: int) -> dict[str, float]:
    """Time from a shopper's edit to `available: 0` (and back) reaching every subscriber."""
    admin = token("root", "admin")
    arrivals: list[float] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"},
                                     connector=aiohttp.TCPConnector(limit=0)) as s:
        await s.put(f"{base}/api/catalog/LAST", json={"name": "Last one", "price": 100})
        await s.put(f"{base}/api/stock/LAST", json={"onHand": 1})
        async with s.post(f"{base}/api/carts", json={"channel": "web", "owner": "shopper"}) as r:
            cart = (await r.json())["cartId"]
        shopper = await YClient(s, base.replace("http", "ws") + f"/ws/carts/{cart}?token={admin}").connect()
        await shopper.wait_synced()
        expected: dict[str, int] = {"value": 1}
        marks: dict[int, float] = {}
        seen = [0]

        async def subscriber() -> None:
            async with s.ws_connect(base.replace("http", "ws") + "/ws/stock?skus=LAST") as ws:
                async for msg in ws:
                    data = orjson.loads(msg.data)
                    if data.get("available") == expected["value"] and expected["value"] in marks:
                        arrivals.append(time.perf_counter() - marks[expected["value"]])
                        seen[0] += 1
        tasks = [asyncio.ensure_future(subscriber()) for _ in range(subscribers)]
        await asyncio.sleep(1.0)
        for r in range(rounds):
            seen[0] = 0
            marks.clear()
            if r % 2 == 0:
                expected["value"] = 0
                marks[0] = time.perf_counter()
                shopper.lines["l"] = new_line("LAST", 1, "shopper", "web", int(time.time() * 1000))
            else:
                expected["value"] = 1
                marks[1] = time.perf_counter()
                del shopper.lines["l"]
            await eventually(lambda: seen[0] >= subscribers, timeout=30, what="every subscriber told")
            progress(f"sold-out push: round {r + 1}/{rounds}")
        for t in tasks:
            t.cancel()
        await shopper.close()
    return {"subscribers": subscribers, "messages": len(arrivals), "p50_ms": percentile(arrivals, 50) * 1e3,
            "p99_ms": percentile(arrivals, 99) * 1e3}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts (~20 s in all)")
    args = parser.parse_args()
    decisions = 20_000 if args.quick else 100_000
    print("stock benchmark (2-core machine; targets: ≥ 20,000 decisions/s in the actor, "
          "sold-out push p99 < 100 ms to 500 subscribers)")
    for fsync in ("everysec", "always"):
        alone = await actor_alone(decisions, in_flight=200, fsync=fsync)
        print(f"\nactor alone, SQLite --fsync {fsync}: {alone['per_second']:,.0f} decisions/s "
              f"({alone['decisions']:,} in {alone['seconds']:.1f} s)")
    with livecart_server("--max-messages-per-second", "1000") as (base, pid):
        e2e = await end_to_end(base, pid, carts=50 if args.quick else 100, rounds=10 if args.quick else 20)
        print(f"\nend to end over websockets: {e2e['per_second']:,.0f} reservations/s, edit→hold in doc "
              f"p50 {e2e['p50_ms']:.1f} ms, p99 {e2e['p99_ms']:.1f} ms, "
              f"server CPU {e2e['server_cpu_ms_per_reservation']:.2f} ms per reservation")
        push = await sold_out_push(base, subscribers=500, rounds=6 if args.quick else 20)
        print(f"\nsold-out push to {push['subscribers']} /ws/stock subscribers ({push['messages']:,} messages): "
              f"edit→message p50 {push['p50_ms']:.1f} ms, p99 {push['p99_ms']:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
