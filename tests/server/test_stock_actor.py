"""The stock actor on a real SQLite store: decisions, expiry exactly once, restarts, and a state machine."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from livecart.server.stock import StockActor, StockError
from livecart.server.store import open_store


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def started(path: Path, clock: Callable[[], float], ttl: float = 60) -> StockActor:
    store = open_store("sqlite", path)
    await store.open()
    actor = StockActor(store, ttl, clock)
    await actor.start()
    return actor


async def shut(actor: StockActor) -> None:
    await actor.stop()
    await actor.store.close()


async def test_reserve_partial_unavailable_lower_raise_release(tmp_path: Path) -> None:
    a = await started(tmp_path, Clock())
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


async def test_adjust_never_goes_below_held_and_commit_lowers_on_hand(tmp_path: Path) -> None:
    a = await started(tmp_path, Clock())
    await a.set_on_hand("MUG", 3)
    await a.reserve("c1", "l1", "MUG", 2)
    with pytest.raises(StockError) as err:
        await a.adjust("MUG", -2)
    assert err.value.code == "below_held" and (await a.levels(["MUG"]))["MUG"].on_hand == 3
    await a.adjust("MUG", -1)  # an in-store sale of the free unit
    assert await a.commit("c1", ["l1"]) == {"l1": 2}
    assert (await a.levels(["MUG"]))["MUG"].to_json() == {"onHand": 0, "held": 0, "available": 0}
    assert await a.commit("c1", ["l1"]) == {}  # committing twice sells nothing more
    await shut(a)


async def test_transfer_moves_a_hold_without_it_touching_stock(tmp_path: Path) -> None:
    a = await started(tmp_path, Clock())
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


async def test_expiry_returns_units_exactly_once_even_racing_a_release(tmp_path: Path) -> None:
    clock = Clock()
    a = await started(tmp_path, clock, ttl=1)
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
    assert [c for c, _ in expired] == ["c2"]  # c1 was released, not expired; c2 expired once
    await shut(a)


async def test_the_timer_fires_by_itself(tmp_path: Path) -> None:
    a = await started(tmp_path, time.time, ttl=0.2)
    await a.set_on_hand("MUG", 1)
    await a.reserve("c1", "l1", "MUG", 1)
    assert (await a.levels(["MUG"]))["MUG"].available == 0
    for _ in range(100):
        if (await a.levels(["MUG"]))["MUG"].available == 1:
            break
        await asyncio.sleep(0.02)
    assert (await a.levels(["MUG"]))["MUG"].available == 1
    await shut(a)


async def test_restart_keeps_holds_and_releases_those_that_ran_out_while_down(tmp_path: Path) -> None:
    clock = Clock()
    a = await started(tmp_path, clock, ttl=10)
    await a.set_on_hand("MUG", 5)
    await a.reserve("c1", "l1", "MUG", 2)
    clock.now += 5
    await a.reserve("c2", "l1", "MUG", 1)
    await shut(a)
    clock.now += 7  # c1's hold ran out while the server was down; c2's did not
    b = await started(tmp_path, clock, ttl=10)
    assert (await b.levels(["MUG"]))["MUG"].to_json() == {"onHand": 5, "held": 1, "available": 4}
    await shut(b)
    c = await started(tmp_path, clock, ttl=10)  # and it is not given back a second time
    assert (await c.levels(["MUG"]))["MUG"].to_json() == {"onHand": 5, "held": 1, "available": 4}
    await shut(c)


CARTS = st.sampled_from(["c1", "c2", "c3"])
LINES = st.sampled_from(["l1", "l2"])
SKUS = st.sampled_from(["A", "B"])


class ActorMachine(RuleBasedStateMachine):
    """Random reserve/raise/lower/release/commit/expire/adjust/restart sequences against a model:
    `0 ≤ held ≤ onHand`, `available = onHand − held`, and each hold comes back at most once."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.dir = Path(tempfile.mkdtemp())
        self.loop = asyncio.new_event_loop()
        self.clock = Clock()
        self.actor = self.run(started(self.dir, self.clock, ttl=10))
        self.on_hand = {"A": 0, "B": 0}
        self.holds: dict[tuple[str, str], tuple[str, int, float]] = {}  # model
        self.returned: list[tuple[str, str]] = []
        self.actor.hold_listeners.append(self._on_expired)

    async def _on_expired(self, cart: str, decisions: dict) -> None:
        self.returned.extend((cart, line) for line in decisions)

    def run(self, coro):
        return self.loop.run_until_complete(coro)

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
        d = self.run(self.actor.reserve(cart, line, sku, qty))
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

    @rule(cart=CARTS)
    def commit(self, cart: str) -> None:
        sold = self.run(self.actor.commit(cart, ["l1", "l2"]))
        for line, qty in sold.items():
            sku = self.holds.pop((cart, line))[0]
            self.on_hand[sku] -= qty

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
        self.actor = self.run(started(self.dir, self.clock, ttl=10))
        self.actor.hold_listeners.append(self._on_expired)

    @invariant()
    def stock_matches_the_model(self) -> None:
        for sku in ("A", "B"):
            level = self.run(self.actor.levels([sku]))[sku]
            assert 0 <= level.held <= level.on_hand
            assert level.available == level.on_hand - level.held
            assert (level.on_hand, level.held) == (self.on_hand[sku], self.held(sku))

    def teardown(self) -> None:
        self.run(shut(self.actor))
        self.loop.close()


ActorMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
test_actor_state_machine = ActorMachine.TestCase
