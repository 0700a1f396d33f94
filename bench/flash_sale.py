"""Flash-sale benchmark: one SKU, many /ws/stock viewers, shoppers racing for it through two
`livecart serve` processes on a real Redis (or a real Redis Cluster). Prints reservations/s,
sold-out push latency to every viewer, oversold (checked against the store) and CPU per process."""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import SECRET  # noqa: E402
from livecart.crdt.cart import new_line  # noqa: E402
from livecart.server import auth  # noqa: E402
from processes import ServerProcess  # noqa: E402
from yclient import YClient  # noqa: E402

SKU = "FLASH"
WAIT = 60.0  # any one phase longer than this is a hang, not a figure


def progress(text: str) -> None:
    print(f"\r  {text:<78}", end="", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def until(check, what: str, timeout: float = WAIT, note=None) -> None:
    """Polls `check` every 20 ms; raises TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        if note:
            progress(note())
        await asyncio.sleep(0.02)


@dataclass
class Viewer:
    """One /ws/stock subscriber: when (wall ms) it first heard `available: 0`, and the server's `at`."""
    sold_out_at: float | None = None
    server_at: float | None = None
    messages: int = 0
    last: dict | None = None


@dataclass
class Sale:
    units: int
    viewers: list[Viewer] = field(default_factory=list)
    shoppers: list[YClient] = field(default_factory=list)


async def watch(s: aiohttp.ClientSession, url: str, v: Viewer, count: list[int]) -> None:
    async with s.ws_connect(url) as ws:
        count[0] += 1
        async for msg in ws:
            data = orjson.loads(msg.data)
            v.messages += 1
            v.last = data
            if data.get("available") == 0 and v.sold_out_at is None:
                v.sold_out_at, v.server_at = time.time() * 1000, data.get("at")


def hold(c: YClient) -> dict | None:
    return c.server.get("holds", {}).get("l")


async def flash_sale(bases: list[str], pids: dict[str, int], units: int = 100, viewers: int = 2000,
                     shoppers: int = 500) -> dict:
    """Runs one sale against `bases` (livecart processes sharing one store); returns its figures."""
    admin = auth.mint(SECRET, "root", "admin")
    headers = {"Authorization": f"Bearer {admin}"}
    out: dict = {"units": units, "viewers": viewers, "shoppers": shoppers, "processes": len(bases)}
    sale = Sale(units)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        async with s.put(f"{bases[0]}/api/catalog/{SKU}", headers=headers, json={"name": "Flash", "price": 1999}) as r:
            assert r.status == 200, await r.text()
        async with s.put(f"{bases[0]}/api/stock/{SKU}", headers=headers, json={"onHand": units}) as r:
            assert r.status == 200, await r.text()

        connected = [0]
        sale.viewers = [Viewer() for _ in range(viewers)]
        tasks = []
        for i, v in enumerate(sale.viewers):  # half the viewers on each process
            url = bases[i % len(bases)].replace("http", "ws") + f"/ws/stock?skus={SKU}"
            tasks.append(asyncio.ensure_future(watch(s, url, v, connected)))
            if i % 100 == 99:
                await asyncio.sleep(0)  # let the connects proceed instead of queueing all at once
        await until(lambda: connected[0] == viewers or any(t.done() for t in tasks), "viewers connected",
                    note=lambda: f"viewers connected: {connected[0]:,}/{viewers:,}")
        failed = [t for t in tasks if t.done()]
        if failed:
            raise RuntimeError(f"a viewer's socket ended early: {failed[0].exception()!r}")

        for i in range(shoppers):  # a cart each, opened on the process its index picks
            base = bases[i % len(bases)]
            tok = auth.mint(SECRET, f"shopper-{i}", "customer")
            async with s.post(f"{base}/api/carts", headers={"Authorization": f"Bearer {tok}"},
                              json={"channel": "web"}) as r:
                assert r.status == 201, await r.text()
                cart = (await r.json())["cartId"]
            c = await YClient(s, base.replace("http", "ws") + f"/ws/carts/{cart}?token={tok}").connect()
            sale.shoppers.append(c)
            if i % 20 == 19:
                progress(f"shoppers connected: {i + 1:,}/{shoppers:,}")
        for c in sale.shoppers:
            await asyncio.wait_for(c.wait_synced(), WAIT)

        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        start = time.time() * 1000
        t0 = time.perf_counter()
        for i, c in enumerate(sale.shoppers):  # the race: every shopper wants one unit
            c.lines["l"] = new_line(SKU, 1, f"shopper-{i}", "web", int(start))
        decided = lambda: sum(1 for c in sale.shoppers if hold(c) is not None)  # noqa: E731
        await until(lambda: decided() == shoppers, "every shopper's line decided",
                    note=lambda: f"race: {decided():,}/{shoppers:,} lines decided")
        race_s = time.perf_counter() - t0
        told = lambda: sum(1 for v in sale.viewers if v.sold_out_at is not None)  # noqa: E731
        try:
            await until(lambda: told() == viewers or any(t.done() for t in tasks), "sold-out pushed to every viewer",
                        note=lambda: f"sold-out: {told():,}/{viewers:,} viewers told")
        except TimeoutError as exc:
            by_process = [sum(1 for v in sale.viewers[i::len(bases)] if v.sold_out_at is not None)
                          for i in range(len(bases))]
            last = [(i % len(bases), v.messages, v.last) for i, v in enumerate(sale.viewers) if v.sold_out_at is None][:4]
            raise TimeoutError(f"{exc}; told per process {by_process}; last messages {last}") from None
        dropped = sum(1 for v, t in zip(sale.viewers, tasks) if t.done() and v.sold_out_at is None)
        if dropped:
            raise RuntimeError(f"{dropped} viewer socket(s) ended before sold-out reached them")
        cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
        wall_s = time.perf_counter() - t0
        progress("checking the store")

        holds = [hold(c) for c in sale.shoppers]
        granted = sum(int(h["qty"]) for h in holds if h and h.get("status") in ("held", "partial"))
        async with s.get(f"{bases[-1]}/api/stock?skus={SKU}", headers=headers) as r:
            level = (await r.json())[SKU]
        for c in sale.shoppers:
            await c.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    pushes = [v.sold_out_at - v.server_at for v in sale.viewers if v.server_at is not None]
    after_start = [v.sold_out_at - start for v in sale.viewers]
    print(file=sys.stderr)
    out.update({
        "race_seconds": race_s, "reservations": granted, "reservations_per_second": granted / race_s,
        "decisions_per_second": shoppers / race_s,
        "store": level, "granted_in_docs": granted,
        "oversold": max(0, level["held"] - units, granted - units, level["held"] - level["onHand"]),
        "store_matches_docs": level["held"] == granted,
        "viewers_told": len(after_start), "push_p50_ms": percentile(pushes, 50), "push_p99_ms": percentile(pushes, 99),
        "push_max_ms": max(pushes) if pushes else None,
        "all_told_after_race_start_ms": max(after_start), "cpu_seconds": cpu, "wall_seconds": wall_s,
    })
    return out


def report(r: dict, title: str) -> None:
    print(f"\n{title}: {r['units']} units, {r['viewers']:,} viewers on /ws/stock, {r['shoppers']:,} shoppers, "
          f"{r['processes']} livecart processes")
    print(f"  reservations/s            {r['reservations_per_second']:,.0f}  ({r['reservations']} units held, "
          f"every line decided in {r['race_seconds'] * 1e3:,.0f} ms: {r['decisions_per_second']:,.0f} decisions/s)")
    print(f"  sold-out to every viewer  p50 {r['push_p50_ms']:.1f} ms, p99 {r['push_p99_ms']:.1f} ms, "
          f"max {r['push_max_ms']:.1f} ms  (server's `at` → arrival; {r['viewers_told']:,}/{r['viewers']:,} told; "
          f"last one {r['all_told_after_race_start_ms']:,.0f} ms after the race began)")
    print(f"  oversold                  {r['oversold']}  (store: onHand {r['store']['onHand']}, held "
          f"{r['store']['held']}, available {r['store']['available']}; granted in carts {r['granted_in_docs']})")
    spent = ", ".join(f"{name} {sec:.2f} s" for name, sec in r["cpu_seconds"].items())
    print(f"  CPU spent (race → all told, {r['wall_seconds']:.1f} s)  {spent}")


async def run(args: argparse.Namespace, cluster: bool) -> dict:
    from redis_cluster import RedisCluster
    from redis_server import RedisServer
    work = Path(tempfile.mkdtemp(prefix="livecart-flash-"))
    with ExitStack() as stack:
        if cluster:
            redis = RedisCluster(work / "cluster").start()
            stack.callback(redis.stop)
            pids = {f"redis:{p}": proc.pid for p, proc in redis.procs.items()}
        else:
            redis = RedisServer(work / "redis").start()
            stack.callback(redis.kill)
            pids = {"redis": redis.proc.pid}
        progress("starting two livecart processes")
        procs = []
        for i in range(2):
            p = ServerProcess(work / f"data{i}", "--store", redis.url, "--bus", redis.url,
                              "--max-messages-per-second", "1000").start()
            stack.callback(p.stop)
            procs.append(p)
        pids = {f"livecart{i}": p.proc.pid for i, p in enumerate(procs)} | pids
        return await asyncio.wait_for(
            flash_sale([p.base for p in procs], pids, args.units, args.viewers, args.shoppers), args.max_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--viewers", type=int, default=2000)
    parser.add_argument("--shoppers", type=int, default=500)
    parser.add_argument("--cluster", action="store_true", help="also run on a 3-master Redis Cluster")
    parser.add_argument("--quick", action="store_true", help="a tenth of the units, viewers and shoppers")
    parser.add_argument("--max-seconds", type=float, default=300, help="abort a sale after this long")
    args = parser.parse_args()
    if args.quick:
        args.units, args.viewers, args.shoppers = args.units // 10, args.viewers // 10, args.shoppers // 10
    if args.shoppers <= args.units:
        parser.error("a flash sale needs more shoppers than units (else it never sells out)")
    print(f"flash sale (targets: 0 oversold; sold-out to every viewer p99 < 100 ms) — {os.cpu_count()} cores; "
          "viewers, shoppers, livecart and Redis share them")
    results = [("two processes, one Redis", asyncio.run(run(args, cluster=False)))]
    report(*reversed(results[0]))
    if args.cluster:
        results.append(("two processes, a 3-master Redis Cluster", asyncio.run(run(args, cluster=True))))
        report(*reversed(results[1]))
    if any(r["oversold"] for _, r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
