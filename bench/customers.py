"""Customer search benchmark: p50/p99 of a search by text and by SKU over generated customers and
order lines, on the embedded SQLite index and on Redis (a redis-server this script starts).
Prints figures; asserts nothing.

    .venv/bin/python bench/customers.py [--customers 100000] [--lines 1000000] [--backend sqlite,redis]

The data goes in through the index's own bulk writes (`put_customers`, `add_purchases`: what a
backfill uses; the same rows as one write at a time); queries are what a call centre types: a first name, a full name, an email, a phone
number's digits, and a SKU bought (SKUs drawn with a long tail, as sales are).
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import percentile  # noqa: E402
from livecart.server.store import open_store  # noqa: E402
from livecart.server.store.index import CustomerQuery, Purchase, ShopIndex, open_index  # noqa: E402

FIRST = ("Ada Alan Grace Edsger Barbara Donald Margaret Ken Frances Tim Radia Linus Guido Anita Leslie John Sophie "
         "Katherine Dennis Bjarne Hedy Niklaus Mary Claude Fran Jean Evelyn Annie Carol Sister Adele Joan Shafi "
         "Whitfield Martin Judea Silvio Yann Fei-Fei Daphne Cynthia Shafrira Ivan Robert Butler Edgar Vint "
         "Tony Jim Bob Peter Paul Ringo George Zoë Ángel Łukasz Søren Nuno Chloé Björn Dagmar").split()
LAST = ("Lovelace Turing Hopper Dijkstra Liskov Knuth Hamilton Thompson Allen Berners-Lee Perlman Torvalds "
        "van-Rossum Borg Lamport McCarthy Wilson Johnson Ritchie Stroustrup Lamarr Wirth Shaw Shannon Bilas "
        "Sammet Boyd Easley Kenny Zeller Goldberg Kahn Goldwasser Diffie Hellman Pearl Micali LeCun Li Koller "
        "Dwork Sutherland Kahn Cerf Hoare Gray Kernighan Metcalfe Engelbart Backus Naur Floyd Hartmanis Stearns "
        "Karp Cook Rabin Scott Milner Ullman Aho Hennessy Patterson Kay Ingalls Tarjan Hopcroft Valiant").split()
DOMAINS = ("example.com", "mail.example", "post.example.org", "inbox.example.net")


def customer_id(n: int) -> str:
    return f"cust-{n:07d}"


def person(n: int, rnd: random.Random) -> dict[str, Any]:
    first, last = rnd.choice(FIRST), rnd.choice(LAST)
    return {"name": f"{first} {last.replace('-', ' ')}",
            "email": f"{first.lower()}.{last.lower()}{n}@{rnd.choice(DOMAINS)}",
            "phone": f"+44 {rnd.randint(20, 79)} {rnd.randint(1000, 9999)} {rnd.randint(1000, 9999)}"}


BATCH = 500  # writes per `put_customers` / `add_purchases` call (one transaction, or one pipeline)


async def load(index: ShopIndex, customers: int, lines: int, skus: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    people = [person(n, rnd) for n in range(customers)]
    with tqdm(total=customers, desc="  customers", unit="c", file=sys.stderr, leave=False) as bar:
        for i in range(0, customers, BATCH):
            await index.put_customers({customer_id(n): people[n] for n in range(i, min(customers, i + BATCH))})
            bar.update(min(BATCH, customers - i))
    cum = list(itertools.accumulate(1 / (k + 1) for k in range(skus)))  # a long tail: a few SKUs sell most
    sku_names = [f"SKU-{k:05d}" for k in range(skus)]
    purchases: list[Purchase] = []
    made, order = 0, 0
    start = 1_700_000_000_000
    while made < lines:
        n = rnd.randrange(customers)
        count = min(rnd.randint(1, 5), lines - made)
        bought = tuple(rnd.choices(sku_names, cum_weights=cum, k=count))
        purchases.append(Purchase(customer_id(n), f"o-{order:08d}", start + order * 60_000, 1000 * count,
                                  bought, (f"cat-{int(bought[0][4:]) % 40}",)))
        made, order = made + count, order + 1
    with tqdm(total=len(purchases), desc="  orders", unit="o", file=sys.stderr, leave=False) as bar:
        for i in range(0, len(purchases), BATCH):
            await index.add_purchases(purchases[i:i + BATCH])
            bar.update(len(purchases[i:i + BATCH]))
    return people


async def measure(index: ShopIndex, people: list[dict[str, Any]], skus: int, queries: int, seed: int
                  ) -> dict[str, list[float]]:
    rnd = random.Random(seed + 1)
    texts = []
    for _ in range(queries):
        p = rnd.choice(people)
        kind = rnd.randrange(4)
        texts.append(p["name"].split()[0] if kind == 0 else p["name"] if kind == 1 else p["email"] if kind == 2
                     else p["phone"].split(" ", 2)[2])
    cum = list(itertools.accumulate(1 / (k + 1) for k in range(skus)))
    sku_queries = [f"SKU-{k:05d}" for k in rnd.choices(range(skus), cum_weights=cum, k=queries)]
    out: dict[str, list[float]] = {"text": [], "sku": []}
    for name, make in (("text", lambda t: CustomerQuery(q=t)), ("sku", lambda s: CustomerQuery(bought=(s,)))):
        for value in tqdm(texts if name == "text" else sku_queries, desc=f"  search by {name}", file=sys.stderr,
                          leave=False):
            t0 = time.perf_counter()
            page = await index.search_customers(make(value))
            out[name].append((time.perf_counter() - t0) * 1000)
            assert page.items or name == "sku", value  # every text query names somebody who exists
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """A throwaway redis-server (no persistence: this measures the index, not the disk)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (make system-deps)")
        self.port, self.dir = free_port(), tempfile.mkdtemp(prefix="bench-customers-redis-")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def memory(self) -> str:
        out = subprocess.run(["redis-cli", "-p", str(self.port), "info", "memory"], capture_output=True, text=True)
        return next((line.split(":")[1].strip() for line in out.stdout.splitlines()
                     if line.startswith("used_memory_human:")), "?")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


async def run(backend: str, args: argparse.Namespace) -> None:
    redis = Redis() if backend == "redis" else None
    data = Path(tempfile.mkdtemp(prefix="bench-customers-"))
    store = open_store(redis.url if redis else "sqlite", data)
    await store.open()
    index = open_index(store)
    await index.open()
    try:
        t0 = time.perf_counter()
        people = await load(index, args.customers, args.lines, args.skus, args.seed)
        loaded = time.perf_counter() - t0
        times = await measure(index, people, args.skus, args.queries, args.seed)
        size = redis.memory() if redis else f"{(data / 'livecart.db').stat().st_size / 2**20:.0f} MiB"
        print(f"{backend:6}  {args.customers:,} customers, {args.lines:,} order lines, loaded in {loaded:.0f} s"
              f" ({size})")
        for name, values in times.items():
            print(f"        search by {name:4}  p50 {percentile(values, 50):6.2f} ms   p99 {percentile(values, 99):6.2f} ms"
                  f"   max {max(values):7.2f} ms   ({len(values)} queries)")
    finally:
        await store.close()
        shutil.rmtree(data, ignore_errors=True)
        if redis:
            redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--lines", type=int, default=1_000_000, help="order lines (1..5 per order)")
    parser.add_argument("--skus", type=int, default=5_000)
    parser.add_argument("--queries", type=int, default=2_000, help="per kind of search")
    parser.add_argument("--backend", default="sqlite,redis")
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    print(f"customer search (limit 50), p99 target < 20 ms embedded; {time.strftime('%Y-%m-%d %H:%M')}")
    for backend in args.backend.split(","):
        asyncio.run(run(backend.strip(), args))


if __name__ == "__main__":
    main()
