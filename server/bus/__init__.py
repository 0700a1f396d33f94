"""The Bus interface: how processes that serve the same carts hear each other's updates and events."""
from __future__ import annotations

import secrets
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol


@dataclass(frozen=True)
class CartMessage:
    """One cart's traffic between processes: a stored update (with its log seq) or awareness."""

    origin: str  # process id of the sender
    kind: str  # "update", "awareness", "awareness?" (send me your clients' awareness)
    seq: int  # the update's number in the cart's log; 0 otherwise
    payload: bytes
    sent: int | None = None  # when the sender published it (Unix ms); None from a sender that does not say


CART_TOPIC = "cart"  # what cart traffic is heard as (`Bus.heard`): one topic, whatever the cart
SENT = "@sent"  # the key of an event's send time (Unix ms) on the wire; the receiving bus takes it off


CartHandler = Callable[[CartMessage], None]
EventHandler = Callable[[dict[str, Any]], None]
HeardHandler = Callable[[str, float], None]  # (topic, seconds from send to heard here)


class Bus(Protocol):
    """Delivery is at most once and may reorder; updates carry their log seq, so a
    receiver that sees a gap catches up from the store, and after a reconnect the
    `reconnected` callbacks let every room do the same."""

    process_id: str
    reconnected: list[Callable[[], Awaitable[None]]]
    heard: list[HeardHandler]  # every message from the bus that says when it was sent: its topic and age

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def join_cart(self, cart_id: str, handler: CartHandler) -> None:
        """After this returns, every message later published for the cart reaches `handler`."""
    async def leave_cart(self, cart_id: str) -> None: ...
    def publish_cart(self, cart_id: str, kind: str, seq: int, payload: bytes) -> None:
        """Fire and forget; messages from one process leave in order."""
    def publish_event(self, topic: str, event: dict[str, Any]) -> None: ...
    def on_event(self, topic: str, handler: EventHandler, on_demand: bool = False) -> None:
        """Register before `start()`: `handler` gets every event on `topic` from any process.

        An `on_demand` topic reaches this process only while something here `follow`s it,
        so a process with no reader of a busy feed does no work for its events."""
    async def follow(self, topic: str) -> None:
        """One more local reader of an on-demand topic; after this returns, every event
        later published on it reaches the handlers."""
    def unfollow(self, topic: str) -> None:
        """One reader fewer; with none left the process stops hearing the topic."""


@asynccontextmanager
async def following(bus: Bus, topic: str) -> AsyncIterator[None]:
    """This process hears `topic` for the block's duration: one local reader of it."""
    try:
        await bus.follow(topic)  # counted at once, so a failed follow is unfollowed too
        yield
    finally:
        bus.unfollow(topic)


def age_of(sent: object) -> float | None:
    """Seconds since `sent` (Unix ms; clocks of two hosts may disagree, so never below 0), or None."""
    if isinstance(sent, (int, float)) and not isinstance(sent, bool):
        return max(0.0, time.time() - sent / 1000)
    return None


def tell_heard(listeners: list[HeardHandler], topic: str, sent: object) -> None:
    age = age_of(sent)
    if age is not None:
        for listener in listeners:
            listener(topic, age)


def new_process_id() -> str:
    return secrets.token_hex(6)


def open_bus(url: str) -> Bus:
    if url in ("memory", ""):
        from .memory import MemoryBus

        return MemoryBus()
    if url.startswith(("redis://", "rediss://")):
        from .redis import RedisBus

        return RedisBus(url)
    if url.startswith("redis+cluster://"):
        from .redis_cluster import RedisClusterBus

        return RedisClusterBus(url)
    raise ValueError(f"unknown bus {url!r} (use 'memory' or a redis:// URL)")
