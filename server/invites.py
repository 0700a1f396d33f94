"""Invite codes: an assistant joins a customer's cart, or a customer claims a walk-in cart."""
from __future__ import annotations

from .access import grant_cart
from .auth import Identity
from .carts import Carts
from .clock import now_ms
from .ids import new_code
from .merging import Merging
from .refusals import Forbidden, NotFound, TooMany
from .store import CartRecord, Store

INVITE_TTL = 10 * 60
GUESSES_PER_MINUTE = 10
_NO_INVITE = "no such invite code (or it expired, or it was used)"


class Invites:
    """Short-lived, single-use codes that share a cart."""

    def __init__(self, store: Store, carts: Carts, merging: Merging) -> None:
        self.store, self.carts, self.merging = store, carts, merging

    async def create(self, who: Identity, record: CartRecord) -> tuple[str, int]:
        """A code for the cart, and when it runs out (ms)."""
        code = new_code()
        await self.store.put_record("invite", code, {"cartId": record.id, "by": who.sub, "role": who.role},
                                    ttl=INVITE_TTL)
        return code, now_ms() + INVITE_TTL * 1000

    async def accept(self, who: Identity, code: str) -> str:
        """An assistant joins the cart; a customer claims a walk-in cart into their own. Returns the cart
        the caller now has. A code refused to its caller is kept for the one it was meant for."""
        store = self.store
        if await store.hit(f"invite-guess:{who.role}:{who.sub}", 60) > GUESSES_PER_MINUTE:
            raise TooMany("too_many_attempts", f"at most {GUESSES_PER_MINUTE} invite codes a minute")
        code = code.strip().upper()
        invite = await store.get_record("invite", code)
        record = await store.get_cart(invite["cartId"]) if invite else None
        if invite is None or record is None:
            raise NotFound("no_invite", _NO_INVITE)
        claiming = who.role == "customer"
        if claiming and not record.owner.startswith("walkin-"):
            mine = record.owner == who.sub
            raise Forbidden("forbidden", "this code is for the assistant who helps you with your own cart" if mine
                            else "this code opens another customer's cart")
        if await store.take_record("invite", code) is None:  # single use: someone was quicker
            raise NotFound("no_invite", _NO_INVITE)
        if who.role == "assistant":
            await grant_cart(store, who, record.id)
        if claiming:
            target = await self.carts.active(who.sub, "web")
            await self.merging.merge(record.id, target)
            return target
        return record.id
