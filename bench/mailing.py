"""Mailing throughput: a `livecart serve` sends a mailing to N recipients (10,000 by default) to a
loopback SMTP sink (aiosmtpd, in its own process) as fast as it may (--mailing-rate 0); prints mails/s.

    .venv/bin/python bench/mailing.py [--recipients 10000]

Target: >= 200 mails/s. The figure counts from the POST /api/mailings to the mailing reported done
(recipients resolved, jobs queued, each mail sent and recorded as sent).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _server import SECRET, free_port, token  # noqa: E402


def sink_main(port: int) -> None:
    """The SMTP sink: accepts everything, counts, keeps nothing."""
    from aiosmtpd.smtp import SMTP

    class Count:
        n = 0

        async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001
            Count.n += 1
            return "250 OK"

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(lambda: SMTP(Count(), hostname="sink"),
                                                                "127.0.0.1", port)
        async with server:
            await server.serve_forever()
    asyncio.run(serve())


async def seed(data: Path, count: int) -> None:
    """`count` past buyers with consent and an email, in the store and its shop index (as a paid order
    and `PUT /api/customers/{id}` leave them)."""
    from livecart.server.order_records import purchase
    from livecart.server.store import open_store
    from livecart.server.store.index import open_index

    store = open_store("sqlite", data)
    await store.open()
    index = open_index(store)
    await index.open()
    now = int(time.time() * 1000)
    purchases, profiles = [], {}
    for n in range(count):
        customer = f"buyer-{n}"
        order = {"id": f"o-{n}", "cartId": f"c-{n}", "customerId": customer, "state": "confirmed", "currency": "EUR",
                 "lines": [{"lineId": "l1", "sku": "MUG", "qty": 1, "total": 500}], "total": 500, "createdAt": now,
                 "history": []}
        await store.put_record("order", order["id"], order)
        await index.put_order(order)
        purchases.append(purchase(order, lambda sku: None))
        profiles[customer] = {"email": f"{customer}@example.com", "name": f"Buyer {n}", "marketingConsent": True}
    await index.add_purchases(purchases)
    await index.put_customers(profiles)
    await store.close()


def call(base: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {token('root', 'admin')}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.loads(r.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        return sink_main(args.sink)
    from tqdm import tqdm

    data = Path(tempfile.mkdtemp(prefix="livecart-bench-mail-")) / "data"
    data.mkdir()
    print(f"seeding {args.recipients} buyers with consent…", flush=True)
    asyncio.run(seed(data, args.recipients))
    sink_port, port = free_port(), free_port()
    sink = subprocess.Popen([sys.executable, __file__, "--sink", str(sink_port)])
    exe = Path(sys.executable).parent / "livecart"
    server = subprocess.Popen([str(exe), "serve", "--port", str(port), "--data-dir", str(data), "--jwt-secret",
                               SECRET, "--log-level", "warning", "--smtp-url", f"smtp://127.0.0.1:{sink_port}",
                               "--mailing-rate", "0"], env=os.environ.copy())
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        started = time.perf_counter()
        answer = call(base, "POST", "/api/mailings", {"subject": "New mugs", "text": "Come and see.",
                                                       "segment": {"bought": ["MUG"]}})
        with tqdm(total=answer["recipients"], unit=" mails", desc="sending") as bar:
            while True:
                progress = call(base, "GET", f"/api/mailings/{answer['mailingId']}")
                bar.update(progress["sent"] + progress["failed"] - bar.n)
                if progress["status"] == "done":
                    break
                time.sleep(0.5)
        elapsed = time.perf_counter() - started
        print(f"mailing of {progress['total']} recipients: {progress['sent']} sent, {progress['failed']} failed "
              f"in {elapsed:.1f} s = {progress['sent'] / elapsed:.0f} mails/s (target >= 200/s)")
    finally:
        server.terminate()
        server.wait(30)
        sink.terminate()
        sink.wait(10)
        shutil.rmtree(data.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
