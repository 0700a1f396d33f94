"""The in-process bus: one process serves every cart, so cart traffic has nowhere to go; events loop back."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from ..clock import now_ms
from . import CartHandler, EventHandler, HeardHandler, new_process_id, tell_heard


class MemoryBus:
    def __init__(self) -> None:
        self.process_id = new_process_id()
        self.reconnected: list[Callable[[], Awaitable[None]]] = []
        self.heard: list[HeardHandler] = []
        self._handlers: dict[str, list[EventHandler]] = {}

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def join_cart(self, cart_id: str, handler: CartHandler) -> None:
        pass

    async def leave_cart(self, cart_id: str) -> None:
        pass

    def publish_cart(self, cart_id: str, kind: str, seq: int, payload: bytes) -> None:
        pass

    def publish_event(self, topic: str, event: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        if topic in self._handlers:
            loop.call_soon(tell_heard, self.heard, topic, now_ms())  # the loop's own lag: all there is here
        for handler in self._handlers.get(topic, ()):
            loop.call_soon(handler, event)

    def on_event(self, topic: str, handler: EventHandler, on_demand: bool = False) -> None:
        self._handlers.setdefault(topic, []).append(handler)

    async def follow(self, topic: str) -> None:
        pass  # one process: its own events are all there is

    def unfollow(self, topic: str) -> None:
        pass
