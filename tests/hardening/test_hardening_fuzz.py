"""A bounded, seeded websocket fuzzer against a real `livecart serve` (issue 16).

Attacker sockets send random and mutated y-protocols frames, awareness garbage, floods,
oversize and text frames, truncated varints and broken websocket framing, while honest
clients edit the same carts. The server must log no unhandled error, every attacker socket
must be closed with the code its input deserves (4400, 4413 or 4429: never 1006, 1002 or
1011), and the honest clients must stay connected and converge with the server's document.
`LIVECART_FUZZ_SEED` picks another run; the number of attacks is fixed.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
from pycrdt import Doc, Map

from crdt.ytools import mutate_with
from harness import SECRET
from livecart.crdt.cart import new_line
from livecart.crdt.protocol import awareness_message, sync_step1, update_message
from livecart.server import auth
from processes import ServerProcess
from ws_attack import RawSocket, awareness_frame, client_frame, close_of
from yclient import YClient, eventually

SEED = int(os.environ.get("LIVECART_FUZZ_SEED", "16"))
ATTACKS = 1000  # attacker sockets in all, each with its few frames (a flood: until closed, at most RATE * 10)
CARTS, HONEST, ATTACKERS = 3, 2, 3  # honest clients and attacker slots per cart
LIMIT, RATE = 64 * 1024, 40  # --max-message-bytes, --max-messages-per-second
SKUS = ("MUG", "TEE", "PEN")
FINISHER = "binary y-protocols frames only"  # the reason a text frame gets: what ends an attack let through
# What a server log must never show: tracebacks, errors, asyncio's "never retrieved" and callback failures.
TROUBLE = re.compile(r"Traceback|\bERROR\b|CRITICAL|never retrieved|Exception in callback|unhandled", re.I)

AWARENESS_GARBAGE = [
    "NaN", "Infinity", "-Infinity", '{"x":NaN}', '{"x":1e400}', "5", "[1]", '"s"', "true", "", "{",
    '{"user":', "{'a':1}", '{"s":"\\ud800"}', "[" * 40 + "]" * 40, '{"a":' * 30 + "1" + "}" * 30,
    json.dumps({"user": {"name": "x" * 20_000}}),
]
TRUNCATED = [b"\x00", b"\x00\x00", b"\x00\x01", b"\x00\x02\x05", b"\x00\x80", b"\x00\x00\xff\xff\xff",
             b"\x01", b"\x01\x05\x01", b"\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", b"\x80",
             b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", b"\x00\x02\xff\xff\xff\xff\xff\xff\x7f"]
# Framing aiohttp refuses: reserved bits, a reserved opcode, a fragmented ping, a bad close code,
# a continuation with nothing to continue, a length no frame may have.
BROKEN_FRAMES = [
    bytes([0xC2]) + client_frame(0x2, b"\x00\x00")[1:],
    client_frame(0x3, b"\x00"),
    client_frame(0x9, b"ping", fin=False),
    client_frame(0x8, b"\x03\xe7bye"),
    client_frame(0x0, b"\x00\x01"),
    client_frame(0x2, b"\x00" * 64, declared=1 << 63),
]


@dataclass
class Budget:
    left: int

    def take(self, n: int = 1) -> bool:
        self.left -= n
        return self.left >= 0


@dataclass
class Outcomes:
    codes: dict[str, Counter[int | None]] = field(default_factory=dict)
    wrong: list[tuple[str, int | None, str]] = field(default_factory=list)

    def record(self, kind: str, code: int | None, reason: str, expected: set[int], may_pass: bool) -> None:
        """`may_pass`: the attack's frames may all be taken (a mutation can make a valid frame),
        so the text frame sent after them may be what closes the socket."""
        self.codes.setdefault(kind, Counter())[code] += 1
        if code not in expected or (reason == FINISHER and not may_pass):
            self.wrong.append((kind, code, reason))


class Attacker:
    """One attacker slot on one cart: opens socket after socket, each with one kind of attack."""

    def __init__(self, rng: random.Random, server: ServerProcess, cart: str, token: str,
                 session: aiohttp.ClientSession, pool: list[bytes], budget: Budget, outcomes: Outcomes) -> None:
        self.rng, self.server, self.cart, self.token = rng, server, cart, token
        self.session, self.pool, self.budget, self.outcomes = session, pool, budget, outcomes
        self.path = f"/ws/carts/{cart}?token={token}"

    async def run(self) -> None:
        kinds: dict[str, Callable[[], Awaitable[None]]] = {
            "random": self.random_frames, "mutated": self.mutated_frames, "truncated": self.truncated,
            "awareness": self.awareness_garbage, "flood": self.flood, "oversize": self.oversize,
            "text": self.text, "rejected": self.rejected_update, "framing": self.broken_framing,
        }
        weights = {"random": 4, "mutated": 6, "truncated": 2, "awareness": 3, "flood": 1, "oversize": 1,
                   "text": 1, "rejected": 2, "framing": 1}
        names = list(kinds)
        while self.budget.take():
            await kinds[self.rng.choices(names, [weights[n] for n in names])[0]]()

    # -- one socket per attack; an attack whose frames were all taken ends with a text frame (4400)

    async def _attack(self, kind: str, frames: list[bytes | str], expected: set[int], may_pass: bool = False) -> None:
        ws = await self.session.ws_connect(self.server.ws(self.path), max_msg_size=0)
        closed = asyncio.ensure_future(close_of(ws, timeout=60))  # read while sending: stop once closed
        try:
            for i, frame in enumerate(frames):
                if closed.done():
                    break
                await (ws.send_str(frame) if isinstance(frame, str) else ws.send_bytes(frame))
                if i % 10 == 9:
                    await asyncio.sleep(0)  # lets the reader see a close
            if not closed.done():
                await ws.send_str("end")
        except ConnectionError:
            pass
        code, reason = await closed
        self.outcomes.record(kind, code, reason, expected, may_pass)

    def _pick(self) -> bytes:
        return self.rng.choice(self.pool)

    async def random_frames(self) -> None:
        frames = [bytes([self.rng.choice((0, 1, 3, self.rng.randrange(256)))])
                  + self.rng.randbytes(self.rng.randrange(64)) for _ in range(self.rng.randint(1, 5))]
        await self._attack("random", frames, {4400}, may_pass=True)

    async def mutated_frames(self) -> None:
        frames = [mutate_with(self._pick(), self.rng.randint, 4) for _ in range(self.rng.randint(1, 5))]
        await self._attack("mutated", frames, {4400}, may_pass=True)

    async def truncated(self) -> None:
        frame = self._pick()
        frames = [self.rng.choice(TRUNCATED), frame[: self.rng.randrange(1, len(frame))]]
        await self._attack("truncated", frames, {4400})

    async def awareness_garbage(self) -> None:
        rng = self.rng
        shape = rng.randrange(4)
        if shape == 0:
            entries = [(rng.randrange(1, 2**32), rng.randint(1, 9), rng.choice(AWARENESS_GARBAGE))]
        elif shape == 1:  # too many clients for one connection (in a frame under the size limit)
            entries = [(i, 1, '{"user":{"name":"x"}}') for i in rng.sample(range(1, 2**32), rng.randint(5, 1500))]
        elif shape == 2:  # ids and clocks past what JavaScript reads
            entries = [(2**53 + rng.randrange(2**20), 1, "{}") if rng.random() < .5 else (7, 2**60, "{}")]
        else:  # a valid state followed by garbage bytes
            entries = [(rng.randrange(1, 2**32), 1, b'{"a":"\xff\xfe"}')]
        size_only = shape == 0 and len(entries[0][2]) > 8 * 1024
        await self._attack("awareness", [awareness_frame(entries)], {4413} if size_only else {4400})

    async def flood(self) -> None:
        # Sent until the server closes it; a server that reads 10 times the rate limit's
        # allowance without closing has no rate limit.
        await self._attack("flood", [bytes([3])] * (RATE * 10), {4429})

    async def oversize(self) -> None:
        size = self.rng.choice((LIMIT + 1, 4 * LIMIT + 1, self.rng.randint(LIMIT + 1, 8 * LIMIT)))
        frame = update_message(self.rng.randbytes(size)) if self.rng.random() < .7 else "x" * size
        await self._attack("oversize", [frame], {4413})

    async def text(self) -> None:
        await self._attack("text", [self.rng.choice(("hello", "{}", "\x00", "é" * 100))], {4400}, may_pass=True)

    async def rejected_update(self) -> None:
        doc = Doc()
        updates: list[bytes] = []
        self._sub = doc.observe(lambda e: updates.append(e.update))  # pycrdt drops an observer nobody holds
        how = self.rng.randrange(4)
        with doc.transaction():
            if how == 0:
                doc.get("server", type=Map)["status"] = "ordered"
            elif how == 1:
                doc.get("lines", type=Map)["x"] = new_line("NOPE", 1, "a", "web", 0)
            elif how == 2:
                doc.get("lines", type=Map)["x"] = new_line("MUG", 10_000, "a", "web", 0)
            else:
                doc.get("elsewhere", type=Map)["x"] = 1
        await self._attack("rejected", [update_message(updates[0])], {4400})

    async def broken_framing(self) -> None:
        raw = await RawSocket.open("127.0.0.1", self.server.port, self.path)
        frame = self.rng.choice(BROKEN_FRAMES)
        raw.send(frame)
        code, reason = await raw.close_frame(timeout=60)
        raw.close()
        self.outcomes.record("framing", code, reason, {4413} if frame is BROKEN_FRAMES[-1] else {4400}, False)


class Honest:
    """A shopper editing its own lines, the note and its presence until told to stop."""

    def __init__(self, rng: random.Random, client: YClient, name: str, pool: list[bytes]) -> None:
        self.rng, self.client, self.name, self.pool = rng, client, name, pool
        self.mine: list[str] = []
        self._sub = client.doc.observe(self._collect)  # every update it sees feeds the mutator

    def _collect(self, event: Any) -> None:
        self.pool.append(update_message(event.update))
        del self.pool[:-200]

    async def run(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set() and not self.client.closed.is_set():
            self.edit(n)
            if n % 7 == 0:
                await self.client.set_presence({"user": {"name": self.name, "role": "customer"}, "n": n})
                awareness = self.client.awareness
                self.pool.append(awareness_message(awareness.encode_awareness_update([awareness.client_id])))
            n += 1
            await asyncio.sleep(self.rng.uniform(0.03, 0.12))

    def edit(self, n: int) -> None:
        rng, lines = self.rng, self.client.lines
        action = rng.random()
        mine = [line for line in self.mine if line in lines]
        if action < .4 and len(mine) < 6 or not mine:
            line_id = f"{self.name}-{n}"
            lines[line_id] = new_line(rng.choice(SKUS), rng.randint(1, 3), self.name, "web", 1_700_000_000_000 + n)
            self.mine.append(line_id)
        elif action < .75:
            lines[rng.choice(mine)]["qty"] = rng.randint(1, 5)
        elif action < .9:
            del lines[rng.choice(mine)]
        else:
            self.client.meta["note"] = f"{self.name} {n}"


def comparable(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {"lines": snapshot["lines"], "meta": snapshot["meta"], "server": snapshot["server"]}


async def test_websocket_fuzz(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    server = ServerProcess(tmp_path / "data", "--max-message-bytes", str(LIMIT),
                           "--max-messages-per-second", str(RATE)).start()
    try:
        async with aiohttp.ClientSession() as session:
            outcomes, honest = await fuzz(rng, server, session)
    finally:
        server.stop()
    log = Path(server.log.name).read_text(errors="replace")
    print(f"\nfuzz seed {SEED}: attacker closes by kind {dict(sorted(outcomes.codes.items()))}")
    trouble = [line for line in log.splitlines() if TROUBLE.search(line)]
    assert not trouble, "the server logged errors:\n" + "\n".join(trouble[:40])
    assert not outcomes.wrong, f"attacker sockets closed with the wrong code: {outcomes.wrong[:20]}"
    assert sum(sum(c.values()) for c in outcomes.codes.values()) == ATTACKS
    assert all(kind in outcomes.codes for kind in ("mutated", "awareness", "flood", "oversize", "framing"))


async def fuzz(rng: random.Random, server: ServerProcess,
               session: aiohttp.ClientSession) -> tuple[Outcomes, list[Honest]]:
    admin = auth.mint(SECRET, "root", "admin")
    for sku in SKUS:
        async with session.put(f"{server.base}/api/catalog/{sku}", json={"name": sku, "price": 500, "maxQty": 9},
                               headers={"Authorization": f"Bearer {admin}"}) as r:
            assert r.status == 200, await r.text()
        async with session.put(f"{server.base}/api/stock/{sku}", json={"onHand": 10_000},
                               headers={"Authorization": f"Bearer {admin}"}) as r:
            assert r.status == 200, await r.text()
    token = auth.mint(SECRET, "alice", "customer")
    carts: list[str] = []
    for _ in range(CARTS):
        async with session.post(f"{server.base}/api/carts", json={"channel": "web"},
                                headers={"Authorization": f"Bearer {token}"}) as r:
            carts.append((await r.json())["cartId"])
    pool: list[bytes] = [sync_step1(b"\x00"), awareness_message(b"\x00")]
    honest: list[Honest] = []
    for cart in carts:
        for i in range(HONEST):
            client = await YClient(session, server.ws(f"/ws/carts/{cart}?token={token}")).connect()
            await client.wait_synced(timeout=20)
            honest.append(Honest(random.Random(rng.random()), client, f"h{len(honest)}", pool))
    budget, outcomes, stop = Budget(ATTACKS), Outcomes(), asyncio.Event()
    editing = [asyncio.ensure_future(h.run(stop)) for h in honest]
    await asyncio.sleep(0.3)  # the pool fills with real updates before the mutator draws from it
    attackers = [Attacker(random.Random(rng.random()), server, cart, token, session, pool, budget, outcomes)
                 for cart in carts for _ in range(ATTACKERS)]
    await asyncio.gather(*(a.run() for a in attackers))
    stop.set()
    await asyncio.gather(*editing)
    for h in honest:
        assert not h.client.closed.is_set(), (h.name, h.client.close_code, h.client.close_reason)
    for index, cart in enumerate(carts):
        fresh = await YClient(session, server.ws(f"/ws/carts/{cart}?token={token}")).connect()
        await fresh.wait_synced(timeout=20)
        mine = honest[index * HONEST:(index + 1) * HONEST]
        await eventually(lambda: all(comparable(h.client.snapshot()) == comparable(fresh.snapshot())
                                     for h in mine), timeout=30, what=f"honest clients of {cart} to converge")
        await fresh.close()
    for h in honest:
        await h.client.close()
    return outcomes, honest
