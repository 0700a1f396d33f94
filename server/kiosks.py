"""Kiosks: one customer at a time, signed in with a code from their phone, signed out on request or when idle."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from .bus import Bus
from .carts import Carts
from .clock import now_ms
from .config import Config
from .hooks import Edit, Extension
from .ids import new_code
from .refusals import NotFound, TooMany
from .store import Store
from .tasks import cancel_and_wait

if TYPE_CHECKING:  # the rooms call extensions; this one only reads which kiosk edited
    from .sync.room import Room

log = logging.getLogger("livecart.kiosks")
CODE_TTL = 5 * 60
CODES_PER_MINUTE = 10  # codes one kiosk may try
TOUCH_EVERY = 5.0  # seconds between two idle-clock resets written for one kiosk
_SIGNED_OUT = "nobody is signed in at this kiosk"


class Kiosks(Extension):
    """Kiosk sessions, their idle clocks (a kiosk's own edits count) and the sweep that ends idle ones."""

    def __init__(self, config: Config, store: Store, bus: Bus, carts: Carts) -> None:
        self.store, self.bus, self.carts = store, bus, carts
        self.idle = config.kiosk_idle_seconds
        self._last_touch: dict[str, float] = {}
        self._sweeper: asyncio.Future[None] | None = None

    async def code_for(self, customer_id: str) -> tuple[str, int]:
        """A code the customer types at a kiosk, and when it runs out (ms)."""
        code = new_code()
        await self.store.put_record("kiosk-code", code, {"customerId": customer_id}, ttl=CODE_TTL)
        return code, now_ms() + CODE_TTL * 1000

    async def count_attempt(self, kiosk_id: str) -> None:
        """One more code tried at this kiosk; refused past CODES_PER_MINUTE."""
        if await self.store.hit(f"kiosk-guess:{kiosk_id}", 60) > CODES_PER_MINUTE:
            raise TooMany("too_many_attempts", f"at most {CODES_PER_MINUTE} codes a minute")

    async def sign_in(self, kiosk_id: str, code: str) -> dict[str, Any]:
        """Signs the code's customer in (whoever was signed in is signed out); returns the session."""
        granted = await self.store.take_record("kiosk-code", code.strip().upper())
        if granted is None:
            raise NotFound("no_code", "no such kiosk code (or it expired, or it was used)")
        await self.sign_out(kiosk_id, "another customer signed in")
        cart_id = await self.carts.active(granted["customerId"], "kiosk")
        session = {"customerId": granted["customerId"], "cartId": cart_id, "lastActive": time.time()}
        await self.store.put_record("kiosk", kiosk_id, session)
        return session

    async def current(self, kiosk_id: str) -> tuple[dict[str, Any], int]:
        """Who is signed in, and the seconds left before the idle sign-out."""
        session = await self.store.get_record("kiosk", kiosk_id)
        if session is None:
            raise NotFound("signed_out", _SIGNED_OUT)
        return session, max(0, int(session["lastActive"] + self.idle - time.time()))

    async def state(self, kiosk_id: str) -> dict[str, Any] | None:
        """Who is signed in (with the seconds left before the idle sign-out), or None: nobody is."""
        session = await self.store.get_record("kiosk", kiosk_id)
        if session is None:
            return None
        return {"cartId": session["cartId"], "customerId": session["customerId"],
                "idleSecondsLeft": max(0, int(session["lastActive"] + self.idle - time.time()))}

    async def ping(self, kiosk_id: str) -> None:
        """The customer is still there: the idle clock starts again."""
        if not await self.touch(kiosk_id, force=True):
            raise NotFound("signed_out", _SIGNED_OUT)

    async def sign_out(self, kiosk_id: str, reason: str) -> bool:
        """Revokes the kiosk's access and closes its sockets in every process; the cart stays the customer's."""
        session = await self.store.take_record("kiosk", kiosk_id)
        if session is None:
            return False
        self.bus.publish_event("revoke", {"role": "kiosk", "sub": kiosk_id, "reason": f"kiosk {reason}"})
        return True

    async def touch(self, kiosk_id: str, force: bool = False) -> bool:
        """Resets the idle clock (throttled: a burst of edits writes once)."""
        now = time.time()
        if not force and now - self._last_touch.get(kiosk_id, 0) < TOUCH_EVERY:
            return True
        session = await self.store.get_record("kiosk", kiosk_id)
        if session is None:
            return False
        self._last_touch[kiosk_id] = now
        await self.store.put_record("kiosk", kiosk_id, {**session, "lastActive": now})
        return True

    def on_edit(self, room: Room, edit: Edit) -> None:
        """A kiosk's own edits count as activity (they restart its idle clock)."""
        if edit.who.role == "kiosk":
            asyncio.ensure_future(self.touch(edit.who.sub))

    async def start(self) -> None:
        """Signs out kiosks nobody has used for `kiosk_idle_seconds` (any process may; one wins)."""
        self._sweeper = asyncio.ensure_future(self._sweep())

    async def stop(self) -> None:
        if self._sweeper is not None:
            await cancel_and_wait(self._sweeper)  # a single cancel can be lost (see tasks.py)

    async def _sweep(self) -> None:
        idle = self.idle
        while True:
            await asyncio.sleep(min(5.0, max(0.2, idle / 4)))
            try:
                for kiosk_id, session in (await self.store.list_records("kiosk")).items():
                    if time.time() - session["lastActive"] > idle:
                        await self.sign_out(kiosk_id, f"signed out after {int(idle)} s idle")
            except Exception as exc:  # storage away: try again next round
                log.warning("kiosk idle sweep failed: %s", exc)
