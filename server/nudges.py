"""Nudge rules (`/api/rules`): a cart idle, a checkout left half-way, or a shopper away in another tab
for N minutes → the shop floor is told (`rule.fired`), or a discount is offered into the cart through
the staff's own path (`Offers`, `server.offers`, pricing). A rule fires at most once per cart, across
restarts and processes: whoever fires it first claims (rule, cart) in the store, set-if-absent.

It follows the carts this process serves (an `Extension` of the rooms) and the browsers connected to
it (the browsing service's events); knows nothing of aiohttp."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..crdt.cart import plain
from .bus import Bus
from .browsing import ANONYMOUS
from .discounts import Offers, code_from_json, rule_from_json as discount_from_json
from .feeds import shop_event
from .hooks import Edit, Extension
from .refusals import Invalid, NotFound, Refused
from .store import Store

if TYPE_CHECKING:
    from .sync.room import Room

log = logging.getLogger("livecart.nudges")
EVENTS = ("checkout_idle", "cart_idle", "away")
ACTIONS = ("notify", "offer")
TOPIC = "rules"
MAX_MINUTES = 7 * 24 * 60
CLAIM_TTL = 400 * 24 * 3600.0  # a claim outlives any cart
SWEEP_MIN, SWEEP_MAX = 0.02, 15.0  # seconds between two looks at the clocks


@dataclass(frozen=True)
class Rule:
    id: str
    event: str
    minutes: float
    action: str
    code: str | None = None
    discount: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.minutes * 60

    def to_json(self) -> dict[str, Any]:
        then: dict[str, Any] = {"action": self.action}
        if self.action == "offer":
            then.update(code=self.code, **self.discount)
        return {"id": self.id, "when": {"event": self.event, "minutes": self.minutes}, "then": then}


def rule_from_json(rule_id: str, body: Any) -> Rule:
    """`{when: {event, minutes}, then: {action: notify|offer, code?, percentOff?|amountOff?}}`, checked."""
    if not isinstance(rule_id, str) or not 1 <= len(rule_id) <= 64:
        raise Invalid("bad_rule", "a rule id is 1..64 characters")
    if not isinstance(body, dict) or not isinstance(body.get("when"), dict) or not isinstance(body.get("then"), dict):
        raise Invalid("bad_rule", "a rule is {when: {event, minutes}, then: {action, ...}}")
    when, then = body["when"], body["then"]
    event, minutes, action = when.get("event"), when.get("minutes"), then.get("action")
    if event not in EVENTS:
        raise Invalid("unknown_event", f"when.event must be one of {', '.join(EVENTS)}")
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not 0 < minutes <= MAX_MINUTES:
        raise Invalid("bad_rule", f"when.minutes is a number above 0, at most {MAX_MINUTES}")
    if action not in ACTIONS:
        raise Invalid("bad_rule", f"then.action must be one of {', '.join(ACTIONS)}")
    if action == "notify":
        if any(then.get(k) is not None for k in ("code", "percentOff", "amountOff")):
            raise Invalid("bad_rule", "a notify rule offers nothing: code, percentOff and amountOff are for offers")
        return Rule(rule_id, event, minutes, action)
    code = code_from_json({"code": then.get("code", rule_id)})
    return Rule(rule_id, event, minutes, action, code, discount_from_json(then))


@dataclass
class Followed:
    """A cart this process serves, as the clocks see it."""

    owner: str
    last_edit: float  # monotonic
    lines: int = 0
    status: str = "open"
    in_checkout: bool = False
    step_at: int = 0  # checkout.updatedAt (ms), to notice a step taken since


class Nudges(Extension):
    """The rules (a copy in every process), the clocks of the carts and browsers here, and the firing."""

    def __init__(self, store: Store, bus: Bus, offers: Offers) -> None:
        self.store, self.bus, self.offers = store, bus, offers
        self.rules: dict[str, Rule] = {}
        self.carts: dict[str, Followed] = {}
        self.away: dict[str, tuple[str, float]] = {}  # browser id → (who, away since, monotonic)
        self.fired: set[tuple[str, str]] = set()  # (rule, cart) claimed (here or elsewhere): not asked again
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._firing: set[asyncio.Task[None]] = set()
        self._looking: set[tuple[str, str]] = set()
        self._rooms: dict[str, Room] = {}

    # -- rules ----------------------------------------------------------------------------------

    async def load(self, _event: Any = None) -> None:
        stored = await self.store.list_records("nudge-rule")
        rules = {}
        for rule_id, body in stored.items():
            try:
                rules[rule_id] = rule_from_json(rule_id, body)
            except Refused:
                log.warning("rule %s: stored rule no longer valid; ignored", rule_id)
        self.rules = rules
        self._wake.set()

    async def put(self, rule_id: str, body: Any) -> Rule:
        rule = rule_from_json(rule_id, body)
        await self.store.put_record("nudge-rule", rule_id, rule.to_json())
        self.rules[rule_id] = rule
        self.bus.publish_event(TOPIC, {"rule": rule_id})
        self._wake.set()
        return rule

    async def delete(self, rule_id: str) -> None:
        if await self.store.get_record("nudge-rule", rule_id) is None:
            raise NotFound("no_rule", "no such rule")
        await self.store.delete_record("nudge-rule", rule_id)
        self.rules.pop(rule_id, None)
        self.bus.publish_event(TOPIC, {"rule": rule_id})

    def listing(self) -> list[dict[str, Any]]:
        return [r.to_json() for _, r in sorted(self.rules.items())]

    # -- what happens: rooms (Extension) and browsers ---------------------------------------------

    def on_load(self, room: Room) -> None:
        self._follow(room, edited=True)

    def on_edit(self, room: Room, edit: Edit) -> None:
        self._follow(room, edited=True)

    def on_unload(self, room: Room) -> None:
        self._follow(room, edited=False)  # kept: an idle cart is exactly one nobody has open

    def _follow(self, room: Room, edited: bool) -> None:
        followed = self.carts.get(room.id)
        if followed is None:
            followed = self.carts[room.id] = Followed("", time.monotonic())
            asyncio.ensure_future(self._owner(room.id, followed))
        elif edited:
            followed.last_edit = time.monotonic()
        self._read(room, followed)

    async def _owner(self, cart_id: str, followed: Followed) -> None:
        record = await self.store.get_cart(cart_id)
        followed.owner = record.owner if record else ""

    @staticmethod
    def _read(room: Room, followed: Followed) -> None:
        cart = room.cart
        with cart.doc.transaction():
            followed.lines = len(cart.lines)
            checkout = plain(cart.server.get("checkout") or {})
        followed.status = cart.status
        followed.in_checkout = checkout.get("state") == "in_progress"
        at = int(checkout.get("updatedAt") or 0)
        if at != followed.step_at:  # a step taken is activity too
            followed.step_at, followed.last_edit = at, time.monotonic()

    def browsed(self, type_: str, data: dict[str, Any]) -> None:
        """A browsing event of this process (browse.away / back / left / view)."""
        tab, who = str(data.get("id")), str(data.get("who"))
        hidden = type_ == "browse.away" or (type_ == "browse.view" and data.get("visible") is False)
        if hidden and who != ANONYMOUS:
            self.away.setdefault(tab, (who, time.monotonic()))  # away since it first went, not since the last word
        elif type_ in ("browse.back", "browse.left", "browse.view"):
            self.away.pop(tab, None)

    # -- the clocks ------------------------------------------------------------------------------

    def start(self, rooms: dict[str, Room]) -> None:
        self._rooms = rooms
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        for task in [self._task, *self._firing]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in [self._task, *self._firing] if t is not None), return_exceptions=True)

    async def _run(self) -> None:
        while True:
            pause = min((r.seconds / 4 for r in self.rules.values()), default=SWEEP_MAX)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), max(SWEEP_MIN, min(SWEEP_MAX, pause)))
            except asyncio.TimeoutError:
                pass
            try:
                self.sweep()
            except Exception:  # one bad look must not stop the clocks
                log.exception("nudges: sweep failed")

    def sweep(self) -> None:
        """Fires every rule whose condition holds now (each (rule, cart) once: the claim decides)."""
        if not self.rules:
            return
        now = time.monotonic()
        for cart_id, followed in list(self.carts.items()):
            room = self._rooms.get(cart_id)
            if room is not None:
                self._read(room, followed)
            if followed.status != "open":
                if followed.status in ("ordered", "merged", "closed"):
                    del self.carts[cart_id]
                continue
            idle = now - followed.last_edit
            for rule in self.rules.values():
                if (rule.event == "cart_idle" and followed.lines and idle >= rule.seconds) or (
                        rule.event == "checkout_idle" and followed.in_checkout and idle >= rule.seconds):
                    self._fire(rule, cart_id)
        away_rules = [r for r in self.rules.values() if r.event == "away"]
        for who, since in list(self.away.values()):
            for rule in away_rules:
                if now - since >= rule.seconds and (rule.id, who) not in self._looking:
                    self._spawn(self._fire_away(rule, who), (rule.id, who))

    async def _fire_away(self, rule: Rule, who: str) -> None:
        """The shopper's newest open cart is the one the nudge is for (wherever it is served)."""
        closed = await self.store.list_records("cart-closed")
        for record in reversed(await self.store.list_carts(who)):
            if record.id not in closed:
                self._fire(rule, record.id)
                return

    def _fire(self, rule: Rule, cart_id: str) -> None:
        if (rule.id, cart_id) in self.fired:
            return
        self.fired.add((rule.id, cart_id))
        self._spawn(self._claim_and_act(rule, cart_id))

    def _spawn(self, work: Any, looking: tuple[str, str] | None = None) -> None:
        task = asyncio.ensure_future(work)
        self._firing.add(task)
        task.add_done_callback(self._firing.discard)
        if looking is not None:  # one look for a shopper's cart at a time, per rule
            self._looking.add(looking)
            task.add_done_callback(lambda _: self._looking.discard(looking))

    async def _claim_and_act(self, rule: Rule, cart_id: str) -> None:
        try:
            # Set-if-absent in the store: one process, once, ever (a restart finds the claim there).
            if not await self.store.lock(f"rule-fired|{rule.id}|{cart_id}", rule.id, CLAIM_TTL):
                return
            record = await self.store.get_cart(cart_id)
            if record is None:
                return
            if rule.action == "offer":
                assert rule.code is not None
                await self.offers.offer(record, rule.code, rule.discount)
            shop_event(self.bus, "rule.fired", rule=rule.id, cartId=cart_id, event=rule.event, action=rule.action,
                       owner=record.owner, **({"code": rule.code, **rule.discount} if rule.action == "offer" else {}))
        except Refused as exc:  # the cart is no longer open: nothing to nudge
            log.info("rule %s on cart %s: %s", rule.id, cart_id, exc)
        except Exception:
            self.fired.discard((rule.id, cart_id))  # the store was away: the next sweep tries again
            log.exception("rule %s on cart %s failed", rule.id, cart_id)
