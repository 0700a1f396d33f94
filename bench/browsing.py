"""Browsing presence benchmark (issue 19 #2): N storefront clients on /ws/stock (every SKU, as the
storefront subscribes), each changing the product it views every `--every` seconds; one shop floor
on /ws/admin. Prints the server's CPU per 1,000 view messages and the delay until the shop floor
sees each view (p50/p99/max). Asserts nothing.

    .venv/bin/python bench/browsing.py [--clients 2000] [--every 2] [--seconds 20] [--workers 2]

The clients run in `--workers` processes of their own, the shop floor in this one, so a busy client
process does not delay the shop floor's clock. Delay = when the shop floor reads `browse.view`
minus when the client sent `view` (one machine, one clock).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import os
import multiprocessing as mp
import random
import sys
import time
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import cpu_seconds, livecart_server, percentile, token  # noqa: E402

SKUS = [f"P{i:02d}" for i in range(31)]  # the demo shop's size


def progress(text: str) -> None:
    print(f"\r  {text:<70}", end="", file=sys.stderr, flush=True)


class RawSocket:
    """A bare websocket client for the load: it sends masked text frames and reads whatever comes
    without parsing it (the viewer counts it is sent are not what is measured), so that 2,000 of
    them fit beside the server on a small machine. The shop floor uses aiohttp's full client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, host: str, port: int, path: str) -> "RawSocket":
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head.decode(errors="replace"))
        return cls(reader, writer)

    def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        n = len(payload)
        header = bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)

    async def drain_forever(self) -> None:
        while await self.reader.read(1 << 16):
            pass

    def close(self) -> None:
        self.writer.close()


async def _clients(base: str, first: int, count: int, every: float, start_at: float, stop_at: float,
                   out: "mp.Queue[object]") -> None:
    """One worker: `count` storefronts; puts (sent views [(who, sku, t)], views sent in the window)."""
    host, port = base.removeprefix("http://").split(":")
    sent: list[tuple[str, str, float]] = []
    in_window = 0

    async def storefront(i: int) -> None:
        nonlocal in_window
        who = f"shopper-{i}"
        ws = await RawSocket.connect(host, int(port), f"/ws/stock?skus={','.join(SKUS)}&token={token(who)}")
        reader = asyncio.ensure_future(ws.drain_forever())
        rng = random.Random(i)
        sku = rng.choice(SKUS)
        await asyncio.sleep(max(0.0, start_at - time.time()) + rng.random() * every)  # spread out
        while time.time() < stop_at and not reader.done():
            sku = rng.choice([s for s in SKUS if s != sku])
            t = time.time()
            ws.send_text(orjson.dumps({"type": "view", "sku": sku}).decode())
            sent.append((who, sku, t))
            if t >= start_at:
                in_window += 1
            await asyncio.sleep(every)
        reader.cancel()
        ws.close()

    tasks = []
    for i in range(first, first + count):
        tasks.append(asyncio.ensure_future(storefront(i)))
        if len(tasks) % 50 == 0:
            await asyncio.sleep(0.05)  # connect in waves, not one SYN flood
    results = await asyncio.gather(*tasks, return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        print(f"\n  worker {first}: {len(failed)} storefronts failed: {failed[0]!r}", file=sys.stderr)
    out.put((sent, in_window))


def _worker(base: str, first: int, count: int, every: float, start_at: float, stop_at: float,
            out: "mp.Queue[object]") -> None:
    asyncio.run(_clients(base, first, count, every, start_at, stop_at, out))


server_at: list[float] = []  # shop floor read time minus the event's server time
floor_info: dict[str, int] = {}  # events the server dropped for the shop floor (it fell behind)


async def shop_floor(base: str, stop_at: float, seen: list[tuple[str, str, float]]) -> None:
    ws_base = base.replace("http://", "ws://")
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{ws_base}/ws/admin?token={token('root', 'admin')}", max_msg_size=0)
        while time.time() < stop_at + 2:
            try:
                msg = await ws.receive(timeout=max(0.1, stop_at + 2 - time.time()))
            except asyncio.TimeoutError:
                break
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            t = time.time()
            event = orjson.loads(msg.data)
            if event.get("type") == "gap":
                floor_info["dropped"] = floor_info.get("dropped", 0) + event["dropped"]
            if event.get("type") == "browse.view" and event.get("sku"):
                seen.append((event["who"], event["sku"], t))
                server_at.append(t - event["at"] / 1000)
        await ws.close()


async def setup(base: str) -> None:
    admin = {"Authorization": f"Bearer {token('root', 'admin')}"}
    async with aiohttp.ClientSession(headers=admin) as http:
        for sku in SKUS:
            async with http.put(f"{base}/api/catalog/{sku}", json={"name": sku, "price": 1000}) as r:
                assert r.status == 200, await r.text()
            async with http.put(f"{base}/api/stock/{sku}", json={"onHand": 100}) as r:
                assert r.status == 200, await r.text()


def delays(sent: list[tuple[str, str, float]], seen: list[tuple[str, str, float]], start_at: float) -> list[float]:
    """For every view the shop floor saw in the window: when it saw it minus when it was sent."""
    by_who: dict[str, list[tuple[str, float]]] = {}
    for who, sku, t in sent:
        by_who.setdefault(who, []).append((sku, t))
    out = []
    for who, sku, t_seen in seen:
        candidates = [t for s, t in by_who.get(who, ()) if s == sku and t <= t_seen]
        if candidates and candidates[-1] >= start_at:
            out.append(t_seen - candidates[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between a client's view changes")
    parser.add_argument("--seconds", type=float, default=20.0, help="the measured window")
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    args = parser.parse_args()
    with livecart_server() as (base, pid):
        asyncio.run(setup(base))
        ramp = max(5.0, args.clients / 200)  # connecting takes a while on a small machine
        start_at = time.time() + ramp + args.every
        stop_at = start_at + args.seconds
        out: mp.Queue[object] = mp.get_context("spawn").Queue()
        ctx = mp.get_context("spawn")
        share = [args.clients // args.workers + (1 if w < args.clients % args.workers else 0) for w in range(args.workers)]
        procs, first = [], 0
        for count in share:
            procs.append(ctx.Process(target=_worker, args=(base, first, count, args.every, start_at, stop_at, out)))
            first += count
        for p in procs:
            p.start()
        seen: list[tuple[str, str, float]] = []

        async def observe() -> float:
            floor = asyncio.ensure_future(shop_floor(base, stop_at, seen))
            while time.time() < start_at:
                progress(f"connecting {args.clients:,} storefronts ({start_at - time.time():.0f} s)")
                await asyncio.sleep(0.5)
            cpu0 = cpu_seconds(pid)
            while time.time() < stop_at:
                progress(f"measuring: {stop_at - time.time():.0f} s left, shop floor saw {len(seen):,} views")
                await asyncio.sleep(0.5)
            cpu = cpu_seconds(pid) - cpu0
            await floor
            return cpu
        cpu = asyncio.run(observe())
        sent: list[tuple[str, str, float]] = []
        in_window = 0
        for _ in procs:
            s, n = out.get(timeout=120)
            sent.extend(s)
            in_window += n
        for p in procs:
            p.join(30)
    progress("done")
    print(file=sys.stderr)
    lag = [d * 1000 for d in delays(sent, seen, start_at)]
    rate = in_window / args.seconds
    print(f"browsing: {args.clients:,} storefronts (all {len(SKUS)} SKUs each), a view change every {args.every:g} s, "
          f"{args.seconds:g} s measured")
    print(f"  view messages      {in_window:,} ({rate:,.0f}/s)")
    print(f"  server CPU         {cpu:.2f} s = {cpu / args.seconds * 100:.0f}% of a core; "
          f"{cpu / max(in_window, 1) * 1000 * 1000:.0f} ms per 1k view messages (viewer-count fan-out included)")
    print(f"  shop floor saw     {len(lag):,} of them")
    print(f"  delay to the shop floor: p50 {percentile(lag, 50):.1f} ms, p99 {percentile(lag, 99):.1f} ms, "
          f"max {max(lag, default=float('nan')):.1f} ms (target p99 < 200 ms)")
    hop = [x * 1000 for x in server_at]
    print(f"    of which server -> shop floor: p50 {percentile(hop, 50):.1f} ms, p99 {percentile(hop, 99):.1f} ms; "
          f"events dropped for the slow shop floor: {floor_info.get('dropped', 0):,}")
    print(f"  machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
