"""Why a service says no: domain errors with a code and a message (routes show them as HTTP errors)."""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from .store import LockBusy, Store, held_lock


class Refused(Exception):
    """A request a service will not carry out; nothing was changed unless the service says otherwise."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class Invalid(Refused):
    """What was asked for makes no sense (a bad value, an unknown kind)."""


class Forbidden(Refused):
    """The caller may not do this."""


class NotFound(Refused):
    """What was named does not exist (or no longer does)."""


class Conflict(Refused):
    """Not now: the state of what was named does not allow it."""


class TooMany(Refused):
    """Too many attempts in a short time."""


def int_in(body: dict, name: str, low: int, high: int, code: str) -> int:
    """`body[name]` as an integer in low..high (JSON numbers beyond what JavaScript holds
    exactly, or money sums can take, are refused here, before anything is written)."""
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise Invalid(code, f"{name} must be an integer in {low}..{high}")
    return value


@asynccontextmanager
async def exclusive(store: Store, key: str) -> AsyncIterator[None]:
    """Holds a store-wide lock for the block; a caller that cannot get it soon is refused (busy)."""
    try:
        async with held_lock(store, key):
            yield
    except LockBusy:
        raise Conflict("busy", "someone else is changing this right now; try again") from None
