"""Both stock authorities, the embedded actor (SQLite) and RedisStock (Lua scripts): decisions,
expiry exactly once, restarts, a state machine; and Redis processes racing each other."""
from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from redis_server import RedisServer
from yclient import WAIT

from livecart.server.stock import Decision, StockAuthority, StockError
from livecart.server.stock.actor import StockActor
from livecart.server.stock.redis import RedisStock
from livecart.server.store import open_store


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Backend:
    """Where an authority keeps its stock, so a test can stop one and start the next over it:
    the actor on a SQLite file, or RedisStock on its own key prefix of a redis-server."""

    def __init__(self, kind: str, where: Path | str) -> None:
        self.kind = kind
        self.where = where if kind == "actor" else f"{where}?prefix=t-{uuid.uuid4().hex[:8]}:"

    async def start(self, clock: Callable[[], float], ttl: float = 60, **redis_options: Any) -> StockAuthority:
        if self.kind == "actor":
            store = open_store("sqlite", Path(self.where))
            await store.open()
            authority: StockAuthority = StockActor(store, ttl, clock)  # type: ignore[arg-type]
        else:
            authority = RedisStock(str(self.where), ttl, clock, **redis_options)
        await authority.start()
        return authority


async def shut(authority: StockAuthority) -> None:
    await authority.stop()
    if isinstance(authority, StockActor):
        await authority.store.close()  # type: ignore[attr-defined]


@pytest.fixture(params=["actor", "redis"])
def backend(request, tmp_path: Path) -> Backend:
    if request.param == "actor":
        return Backend("actor", tmp_path)
    return Backend("redis", request.getfixturevalue("redis_server").url)


async def test_reserve_partial_unavailable_lower_raise_release(backend: Backend) -> None:
    a = await backend.start(Clock())
    await a.set_on_hand("MUG", 5)
    assert (await a.reserve("c1", "l1", "MUG", 3)).status == "held"
    d = await a.reserve("c2", "l1", "MUG", 4)
    assert (d.status, d.qty) == ("partial", 2)
    assert (await a.reserve("c3", "l1", "MUG", 1)).status == "unavailable"
    assert (await a.levels(["MUG"]))["MUG"].available == 0
    assert (await a.reserve("c1", "l1", "MUG", 1)).qty == 1  # lowering releases at once
    assert (await a.levels(["MUG"]))["MUG"].available == 2
    assert (await a.reserve("c2", "l1", "MUG", 4)).status == "held"  # raising takes what came back
    await a.release("c2", "l1")
    assert (await a.levels(["MUG"]))["MUG"].to_json() == {"onHand": 5, "held": 1, "available": 4}
    await shut(a)


async def test_adjust_never_goes_below_held_and_a_sale_lowers_on_hand(backend: Backend) -> None:
    a = await backend.start(Clock())
    await a.set_on_hand("MUG", 3)
    await a.reserve("c1", "l1", "MUG", 2)
    with pytest.raises(StockError) as err:
        await a.adjust("MUG", -2)
    assert err.value.code == "below_held" and (await a.levels(["MUG"]))["MUG"].on_hand == 3
    await a.adjust("MUG", -1)  # an in-store sale of the free unit
    assert await a.sell("c1", {"l1": ("MUG", 2)}, 0) == {"l1": 2}
    assert (await a.levels(["MUG"]))["MUG"].to_json() == {"onHand": 0, "held": 0, "available": 0}
    assert await a.sell("c1", {"l1": ("MUG", 2)}, 0) == {"l1": 2}  # selling twice sells nothing more
    assert (await a.levels(["MUG"]))["MUG"].on_hand == 0
    await shut(a)


async def test_a_sale_is_all_or_nothing_and_takes_a_lost_hold_again_from_stock(backend: Backend) -> None:
    clock = Clock()
    a = await backend.start(clock, ttl=10)
    await a.set_on_hand("MUG", 3)
    await a.set_on_hand("TEE", 1)
    await a.reserve("c1", "l1", "MUG", 1)  # wants 2 below: one more comes from stock
    await a.reserve("c1", "l3", "MUG", 1)  # a hold of another SKU than the line sells: it goes back
    await a.reserve("c2", "l1", "TEE", 1)  # the last TEE is someone else's
    until = int((clock.now + 60) * 1000)
    with pytest.raises(StockError) as err:
        await a.sell("c1", {"l1": ("MUG", 2), "l2": ("TEE", 1), "l3": ("TEE", 1)}, until)
    assert err.value.code == "out_of_stock" and err.value.lines == ("l2", "l3")
    # Nothing sold; the line that could be covered is held in full through the payment window.
    levels = await a.levels(["MUG", "TEE"])
    assert (levels["MUG"].to_json(), levels["TEE"].to_json()) == (
        {"onHand": 3, "held": 2, "available": 1}, {"onHand": 1, "held": 1, "available": 0})
    assert {line: (h.sku, h.qty, h.expires_at) for line, h in (await a.holds_of("c1")).items()} == {
        "l1": ("MUG", 2, until)}
    await a.release("c2", "l1")
    await shut(a)
    clock.now += 30  # past the TTL, not past the payment window
    b = await backend.start(clock, ttl=10)
    assert await b.sell("c1", {"l1": ("MUG", 2), "l2": ("TEE", 1)}, until) == {"l1": 2, "l2": 1}
    levels = await b.levels(["MUG", "TEE"])
    assert (levels["MUG"].to_json(), levels["TEE"].to_json()) == (
        {"onHand": 1, "held": 0, "available": 1}, {"onHand": 0, "held": 0, "available": 0})
    await shut(b)
    c = await backend.start(clock, ttl=10)  # the sale is remembered across a restart: it sells once
    assert await c.sell("c1", {"l1": ("MUG", 2), "l2": ("TEE", 1)}, until) == {"l1": 2, "l2": 1}
    assert (await c.levels(["MUG"]))["MUG"].on_hand == 1 and not await c.holds_of("c1")
    await shut(c)


async def test_transfer_moves_a_hold_without_it_touching_stock(backend: Backend) -> None:
    a = await backend.start(Clock())
    await a.set_on_hand("MUG", 3)
    await a.reserve("anon", "l1", "MUG", 2)
    await a.reserve("mine", "l9", "MUG", 1)
    seen: list[dict[str, int]] = []
    a.level_listeners.append(seen.append)
    d = await a.transfer(("anon", "l1"), ("mine", "l9"), keep=2)  # same SKU: larger qty wins
    assert (d.status, d.qty) == ("held", 2)
    assert (await a.levels(["MUG"]))["MUG"].held == 2 and seen[-1] == {"MUG": 1}
    assert not await a.holds_of("anon") and (await a.holds_of("mine"))["l9"].qty == 2
    await shut(a)


async def test_a_line_that_changes_sku_gives_the_old_hold_back(backend: Backend) -> None:
    a = await backend.start(Clock())
    await a.set_on_hand("MUG", 2)
    await a.set_on_hand("TEE", 1)
    await a.reserve("c1", "l1", "MUG", 2)
    d = await a.reserve("c1", "l1", "TEE", 3)
    assert (d.status, d.qty) == ("partial", 1)
    levels = await a.levels(["MUG", "TEE"])
    assert (levels["MUG"].held, levels["TEE"].held) == (0, 1)
    assert {line: (h.sku, h.qty) for line, h in (await a.holds_of("c1")).items()} == {"l1": ("TEE", 1)}
    assert await a.sell("c1", {"l1": ("TEE", 1)}, 0) == {"l1": 1}
    assert (await a.levels(["TEE"]))["TEE"].on_hand == 0 and not await a.holds_of("c1")
    await shut(a)


async def test_release_cart_and_transfer_refusals(backend: Backend) -> None:
    a = await backend.start(Clock())
    await a.set_on_hand("MUG", 5)
    await a.set_on_hand("TEE", 5)
    await a.reserve("c1", "l1", "MUG", 2)
    await a.reserve("c1", "l2", "TEE", 1)
    await a.reserve("c2", "l1", "TEE", 2)
    with pytest.raises(StockError) as err:
        await a.transfer(("c1", "l1"), ("c2", "l1"), keep=5)
    assert err.value.code == "sku_mismatch"
    with pytest.raises(StockError) as err:
        await a.transfer(("c1", "nope"), ("c2", "l1"), keep=5)
    assert err.value.code == "no_hold"
    d = await a.transfer(("c1", "l2"), ("c2", "l1"), keep=2)  # 1 + 2 held, keep 2: one unit back
    assert (d.status, d.qty) == ("held", 2) and (await a.levels(["TEE"]))["TEE"].held == 2
    await a.reserve("c3", "l1", "TEE", 1)
    d = await a.transfer(("c3", "l1"), ("c2", "l1"), keep=4)  # 2 + 1 = 3, short of the 4 wanted
    assert (d.status, d.qty) == ("partial", 3)
    seen: list[dict[str, int]] = []
    a.level_listeners.append(seen.append)
    await a.release_cart("c1")
    assert not await a.holds_of("c1") and seen == [{"MUG": 5}]
    assert (await a.release("c1", "l1")) == Decision("released", 0)  # twice: nothing more
    assert seen == [{"MUG": 5}]
    await shut(a)


async def test_extend_keeps_a_carts_holds_through_the_payment_window(backend: Backend) -> None:
    clock = Clock()
    a = await backend.start(clock, ttl=10)
    await a.set_on_hand("MUG", 5)
    await a.reserve("c1", "l1", "MUG", 1)
    await a.reserve("c1", "l2", "MUG", 2)
    await a.reserve("c2", "l1", "MUG", 1)
    until = int(clock.now * 1000) + 60_000
    await a.extend("c1", until)
    await a.extend("c1", until - 30_000)  # never shortens
    assert {h.expires_at for h in (await a.holds_of("c1")).values()} == {until}
    clock.now += 30
    await a.expire_due()
    assert (await a.levels(["MUG"]))["MUG"].held == 3  # c2's ran out, c1's did not
    clock.now += 31
    await a.expire_due()
    assert (await a.levels(["MUG"]))["MUG"].held == 0
    await shut(a)


async def test_expiry_returns_units_exactly_once_even_racing_a_release(backend: Backend) -> None:
    clock = Clock()
    a = await backend.start(clock, ttl=1)
    await a.set_on_hand("MUG", 2)
    await a.reserve("c1", "l1", "MUG", 1)
    await a.reserve("c2", "l1", "MUG", 1)
    expired: list[tuple[str, dict]] = []

    async def listener(cart: str, decisions: dict) -> None:
        expired.append((cart, decisions))
    a.hold_listeners.append(listener)
    clock.now += 2
    await asyncio.gather(a.release("c1", "l1"), a.expire_due(), a.expire_due())
    await asyncio.sleep(0.01)
    assert (await a.levels(["MUG"]))["MUG"].to_json() == {"onHand": 2, "held": 0, "available": 2}
    carts = [c for c, _ in expired]
    assert carts.count("c2") == 1 and carts.count("c1") <= 1  # each hold came back once
    if backend.kind == "actor":
        assert carts == ["c2"]  # one queue, in order: c1 was released before any sweep
    await shut(a)


async def test_the_timer_fires_by_itself(backend: Backend) -> None:
    a = await backend.start(time.time, ttl=0.2)
    await a.set_on_hand("MUG", 1)
    # the decision, not a later read of the level: on a slow machine 0.2 s may be over by then
    assert (await a.reserve("c1", "l1", "MUG", 1)).status == "held"
    deadline = time.monotonic() + WAIT  # only stops a hang: the test is that it fires, not how soon
    while (await a.levels(["MUG"]))["MUG"].available != 1:
        assert time.monotonic() < deadline, "the hold never expired by itself"
        await asyncio.sleep(0.02)
    await shut(a)


async def test_restart_keeps_holds_and_releases_those_that_ran_out_while_down(backend: Backend) -> None:
    clock = Clock()
    a = await backend.start(clock, ttl=10)
    await a.set_on_hand("MUG", 5)
    await a.reserve("c1", "l1", "MUG", 2)
    clock.now += 5
    await a.reserve("c2", "l1", "MUG", 1)
    await shut(a)
    clock.now += 7  # c1's hold ran out while the server was down; c2's did not
    b = await backend.start(clock, ttl=10)
    assert (await b.levels(["MUG"]))["MUG"].to_json() == {"onHand": 5, "held": 1, "available": 4}
    await shut(b)
    c = await backend.start(clock, ttl=10)  # and it is not given back a second time
    assert (await c.levels(["MUG"]))["MUG"].to_json() == {"onHand": 5, "held": 1, "available": 4}
    await shut(c)


CARTS = st.sampled_from(["c1", "c2", "c3"])
LINES = st.sampled_from(["l1", "l2"])
SKUS = st.sampled_from(["A", "B"])


class ActorMachine(RuleBasedStateMachine):
    """Random reserve/raise/lower/release/sell/expire/adjust/restart sequences against a model:
    `0 ≤ held ≤ onHand`, `available = onHand − held`, each hold comes back at most once, and
    each line sells once, all of a sale or nothing."""

    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self.backend = backend
        self.loop = asyncio.new_event_loop()
        self.clock = Clock()
        self.actor = self.run(self.started())
        self.on_hand = {"A": 0, "B": 0}
        self.holds: dict[tuple[str, str], tuple[str, int, float]] = {}  # model
        self.sold: dict[tuple[str, str], tuple[str, int]] = {}
        self.returned: list[tuple[str, str]] = []
        self.actor.hold_listeners.append(self._on_expired)

    async def _on_expired(self, cart: str, decisions: dict) -> None:
        self.returned.extend((cart, line) for line in decisions)

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    async def started(self) -> StockAuthority:
        # No background sweeps in the middle of a step: the model expires holds when time passes.
        return await self.backend.start(self.clock, ttl=10, sweep_interval=3600)

    def held(self, sku: str) -> int:
        return sum(q for s, q, _ in self.holds.values() if s == sku)

    @rule(sku=SKUS, on_hand=st.integers(0, 6))
    def set_on_hand(self, sku: str, on_hand: int) -> None:
        try:
            self.run(self.actor.set_on_hand(sku, on_hand))
            self.on_hand[sku] = on_hand
        except StockError:
            assert on_hand < self.held(sku)

    @rule(sku=SKUS, delta=st.integers(-4, 4))
    def adjust(self, sku: str, delta: int) -> None:
        target = self.on_hand[sku] + delta
        try:
            self.run(self.actor.adjust(sku, delta))
            self.on_hand[sku] = target
        except StockError:
            assert target < self.held(sku) or target < 0

    @rule(cart=CARTS, line=LINES, sku=SKUS, qty=st.integers(0, 5))
    def reserve(self, cart: str, line: str, sku: str, qty: int) -> None:
        old = self.holds.get((cart, line))
        self.decided(cart, line, sku, qty, old, self.run(self.actor.reserve(cart, line, sku, qty)))

    @rule(cart=CARTS, line=LINES, sku=SKUS, qty=st.integers(1, 5), release=st.booleans())
    def reserve_at_once(self, cart: str, line: str, sku: str, qty: int, release: bool) -> None:
        """What a room does per edit: decided on the spot, saved with the store's next commit."""
        old = self.holds.get((cart, line))
        async def at_once() -> dict[str, Decision] | None:  # inside the loop, as in a room
            return self.actor.reserve_now(cart, {line: None if release else (sku, qty)})
        decided = self.run(at_once())
        if decided is None:  # Redis decides remotely: rooms then use reserve/release
            assert isinstance(self.actor, RedisStock)
            return
        if release:
            assert decided[line].status == "released"
            self.holds.pop((cart, line), None)
        else:
            self.decided(cart, line, sku, qty, old, decided[line])

    def decided(self, cart: str, line: str, sku: str, qty: int, old: tuple[str, int, float] | None,
                d: Decision) -> None:
        if old and old[0] == sku and old[1] == qty:
            assert (d.status, d.qty) == ("held", qty)  # unchanged: same hold, same expiry
            return
        keep = old[1] if old and old[0] == sku else 0
        assert d.qty == min(qty, self.on_hand[sku] - self.held(sku) + keep)
        self.holds.pop((cart, line), None)
        if d.qty:
            self.holds[(cart, line)] = (sku, d.qty, self.clock.now + 10)

    @rule(cart=CARTS, line=LINES)
    def release(self, cart: str, line: str) -> None:
        self.run(self.actor.release(cart, line))
        self.holds.pop((cart, line), None)

    @rule(cart=CARTS, wants=st.dictionaries(LINES, st.tuples(SKUS, st.integers(1, 3)), min_size=1))
    def sell(self, cart: str, wants: dict[str, tuple[str, int]]) -> None:
        # A line sold before is reported again as it sold (a repeated payment report).
        wants = {line: self.sold.get((cart, line), want) for line, want in wants.items()}
        until = self.clock.now + 5
        short = tuple(line for line, (sku, qty) in wants.items()
                      if (cart, line) not in self.sold and not self.cover((cart, line), sku, qty, until))
        try:
            sold = self.run(self.actor.sell(cart, wants, int(until * 1000)))
        except StockError as exc:
            assert (exc.code, exc.lines) == ("out_of_stock", short)
            return
        assert not short
        for line, (sku, qty) in wants.items():
            if (cart, line) not in self.sold:
                del self.holds[(cart, line)]
                self.on_hand[sku] -= qty
                self.sold[(cart, line)] = (sku, qty)
        assert sold == {line: self.sold[(cart, line)][1] for line in wants}

    def cover(self, key: tuple[str, str], sku: str, qty: int, until: float) -> bool:
        """The model of a sale's first step: the line held in full until `until`, if stock allows."""
        old = self.holds.get(key)
        if old and old[0] != sku:
            del self.holds[key]  # another SKU's hold goes back first
            old = None
        if qty - (old[1] if old else 0) > self.on_hand[sku] - self.held(sku):
            return False
        self.holds[key] = (sku, qty, max(until, old[2] if old else 0))
        return True

    @rule(seconds=st.integers(0, 12))
    def time_passes_and_holds_expire(self, seconds: int) -> None:
        self.clock.now += seconds
        self.returned.clear()
        self.run(self.actor.expire_due())
        self.run(asyncio.sleep(0))
        due = sorted(key for key, (_, _, expires) in self.holds.items() if expires <= self.clock.now)
        for key in due:
            del self.holds[key]
        assert sorted(self.returned) == due  # each due hold came back once, nothing else did

    @rule()
    def restart(self) -> None:
        self.run(shut(self.actor))
        self.actor = self.run(self.started())
        self.actor.hold_listeners.append(self._on_expired)

    @invariant()
    def stock_matches_the_model(self) -> None:
        levels = self.run(self.actor.levels(["A", "B"]))
        for sku, level in levels.items():
            assert 0 <= level.held <= level.on_hand
            assert level.available == level.on_hand - level.held
            assert (level.on_hand, level.held) == (self.on_hand[sku], self.held(sku))

    @invariant()
    def every_cart_finds_its_holds(self) -> None:
        carts = ("c1", "c2", "c3")

        async def holds_of_each() -> list[dict]:
            return await asyncio.gather(*(self.actor.holds_of(cart) for cart in carts))
        found = self.run(holds_of_each())
        for cart, holds in zip(carts, found):
            assert {line: (h.sku, h.qty) for line, h in holds.items()} == {
                line: (sku, q) for (c, line), (sku, q, _) in self.holds.items() if c == cart}

    def teardown(self) -> None:
        self.run(shut(self.actor))
        self.loop.close()


@pytest.mark.parametrize("kind", ["actor", "redis"])
def test_actor_state_machine(kind: str, tmp_path: Path) -> None:
    # Redis without AOF here: fsync per command would only slow the search down.
    server = RedisServer(tmp_path / "redis", aof=False).start() if kind == "redis" else None
    try:
        def machine() -> ActorMachine:
            import tempfile

            return ActorMachine(Backend(kind, Path(tempfile.mkdtemp()) if server is None else server.url))
        run_state_machine_as_test(
            machine, settings=settings(max_examples=40, stateful_step_count=30, deadline=None))
    finally:
        if server is not None:
            server.kill()


async def test_a_decision_made_at_once_is_saved_with_the_next_commit_and_heard_of_after_it(tmp_path: Path) -> None:
    store = open_store("sqlite", tmp_path)
    await store.open()
    actor = StockActor(store, 60)  # type: ignore[arg-type]
    await actor.start()
    await actor.set_on_hand("A", 5)
    heard: list[dict[str, int]] = []
    actor.level_listeners.append(heard.append)
    decided = actor.reserve_now("c1", {"l1": ("A", 3), "l2": ("A", 4)})
    assert decided is not None
    assert [(d.status, d.qty) for d in decided.values()] == [("held", 3), ("partial", 2)]
    assert (actor.level("A").available, heard) == (0, [])  # decided, but nobody is told before the commit
    assert await store.append("c1", b"the cart update that shows it") == 1  # the same group commit
    assert heard == [{"A": 0}]
    await actor.stop()
    await store.close()
    store = open_store("sqlite", tmp_path)  # what a restart finds
    await store.open()
    actor = StockActor(store, 60)  # type: ignore[arg-type]
    await actor.start()
    assert {line: h.qty for line, h in (await actor.holds_of("c1")).items()} == {"l1": 3, "l2": 2}
    await actor.stop()
    await store.close()


async def test_a_lost_write_sends_decisions_back_through_the_queue_until_reloaded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store("sqlite", tmp_path)
    await store.open()
    actor = StockActor(store, 60)  # type: ignore[arg-type]
    await actor.start()
    await actor.set_on_hand("A", 5)
    real_write = store._write_batch  # type: ignore[attr-defined]

    def disk_error(batch):  # the disk fails once (a fault, not a behaviour under test)
        monkeypatch.setattr(store, "_write_batch", real_write)
        raise sqlite3.OperationalError("disk I/O error")
    monkeypatch.setattr(store, "_write_batch", disk_error)
    assert actor.reserve_now("c1", {"l1": ("A", 2)}) is not None
    with pytest.raises(sqlite3.OperationalError):
        await store.append("c1", b"the cart update")  # it shared the commit, and failed with it
    await asyncio.sleep(0)
    assert actor.reserve_now("c1", {"l2": ("A", 1)}) is None  # memory may be ahead of the store
    assert (await actor.reserve("c1", "l2", "A", 1)).qty == 1  # the queue reloads first
    assert (await actor.levels(["A"]))["A"].held == 1  # the lost hold of l1 is not counted
    assert actor.reserve_now("c1", {"l3": ("A", 1)}) is not None
    await actor.stop()
    await store.close()


# -- Redis: several processes deciding at once ------------------------------------------------


async def test_processes_racing_for_the_last_units_never_oversell(redis_server) -> None:
    url = f"{redis_server.url}?prefix=race:"
    processes = [RedisStock(url, 60) for _ in range(5)]
    try:
        for p in processes:
            await p.start()
        await _race_for_the_last_units(processes)
    finally:  # a failure must not leave sweepers behind: the loop's teardown cancels once and can hang
        for p in processes:
            await p.stop()


async def _race_for_the_last_units(processes: list[RedisStock]) -> None:
    await processes[0].set_on_hand("MUG", 5)
    wants = [(p, f"c{i}", f"l{j}", 1 + (i + j) % 3) for i, p in enumerate(processes) for j in range(20)]
    decisions = await asyncio.gather(*(p.reserve(cart, line, "MUG", qty) for p, cart, line, qty in wants))
    assert sum(d.qty for d in decisions) == 5  # all of it, never more
    # Now everyone raises, lowers and releases at once, while an admin sells one in store.
    churn = [p.reserve(cart, line, "MUG", (qty * 7) % 4) for p, cart, line, qty in wants]
    churn += [p.release(cart, line) for p, cart, line, _ in wants[::3]] + [processes[1].adjust("MUG", -1)]
    results = await asyncio.gather(*churn, return_exceptions=True)
    assert all(not isinstance(r, Exception) or isinstance(r, StockError) for r in results), results
    level = (await processes[2].levels(["MUG"]))["MUG"]
    holds = [h for i in range(5) for h in (await processes[3].holds_of(f"c{i}")).values()]
    assert 0 <= level.held <= level.on_hand <= 5 and level.held == sum(h.qty for h in holds)


async def test_stop_ends_the_sweeper_even_when_a_cancellation_lands_as_a_redis_call_completes(redis_server) -> None:
    """Python 3.11's asyncio.wait_for, which redis-py runs each command under, loses a cancellation
    that arrives in the same turn as the command's completion (CPython gh-86296): a sweeper
    cancelled once swept on, stop() waited for it for good, and a pytest worker hung until killed.
    Sweeping without pause makes that turn likely; stop() must end every time all the same."""
    for i in range(40):
        stock = RedisStock(f"{redis_server.url}?prefix=stop{i}:", 60, sweep_interval=0)
        await stock.start()
        await asyncio.sleep(0.0005 * (i % 10))  # stop at a different point of a sweep each time
        stopping = asyncio.ensure_future(stock.stop())
        done, _ = await asyncio.wait({stopping}, timeout=WAIT)  # waits; cancels nothing
        if not done:  # leave no sweeper behind to hang the loop's teardown
            while stock._sweeper is not None and not stock._sweeper.done():
                stock._sweeper.cancel()
                await asyncio.sleep(0.01)
        assert done, f"stop() still waiting for its sweeper after {WAIT:.0f} s (stop {i + 1})"


async def test_two_sweepers_racing_return_each_expired_hold_once(redis_server) -> None:
    url, clock = f"{redis_server.url}?prefix=sweep:", Clock()
    a, b = (RedisStock(url, 1, clock, sweep_interval=3600) for _ in range(2))
    returned: list[tuple[str, str]] = []

    async def listener(cart: str, decisions: dict) -> None:
        assert all(d == Decision("expired", 0) for d in decisions.values())
        returned.extend((cart, line) for line in decisions)
    for p in (a, b):
        await p.start()
        p.hold_listeners.append(listener)
    await a.set_on_hand("MUG", 100)
    await a.set_on_hand("TEE", 100)
    held = []
    for i in range(30):
        p, sku = (a, b)[i % 2], ("MUG", "TEE")[i % 3 == 0]
        await p.reserve(f"c{i % 7}", f"l{i}", sku, 2)
        held.append((f"c{i % 7}", f"l{i}"))
    clock.now += 2
    await asyncio.gather(a.expire_due(), b.expire_due(), a.expire_due(), b.expire_due())
    await asyncio.sleep(0.05)
    assert sorted(returned) == sorted(held)  # every hold once, by whichever sweeper got it
    assert {sku: lv.held for sku, lv in (await b.levels(["MUG", "TEE"])).items()} == {"MUG": 0, "TEE": 0}
    await a.expire_due()
    await asyncio.sleep(0.01)
    assert len(returned) == len(held)  # nothing twice, later either
    await a.stop()
    await b.stop()


async def test_a_hold_taken_in_the_middle_of_a_sweep_is_not_forgotten(redis_server) -> None:
    url, clock = f"{redis_server.url}?prefix=hint:", Clock()
    a, b = RedisStock(url, 1, clock, sweep_interval=3600), RedisStock(url, 5, clock, sweep_interval=3600)
    for p in (a, b):
        await p.start()
    await a.set_on_hand("MUG", 5)
    await a.reserve("c1", "l1", "MUG", 1)
    clock.now += 2
    run = a._run

    async def run_then_reserve(name: str, sku: str, *args: Any) -> Any:
        result = await run(name, sku, *args)
        if name == "expire":  # another process takes a hold after the pop, before the hint moves
            await b.reserve("c2", "l1", "MUG", 1)
        return result
    a._run = run_then_reserve  # type: ignore[method-assign]
    await a.expire_due()
    a._run = run  # type: ignore[method-assign]
    assert (await a.levels(["MUG"]))["MUG"].held == 1  # c1 went back, c2 holds
    clock.now += 6
    await a.expire_due()
    assert (await a.levels(["MUG"]))["MUG"].held == 0  # and c2's hold was still swept
    await a.stop()
    await b.stop()
