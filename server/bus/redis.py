"""The Redis bus: pub/sub channels per cart (subscribed while a room is loaded) and per event topic
(on-demand topics subscribed only while a local reader follows them)."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

import msgpack
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError, RedisError, TimeoutError

from ..clock import now_ms
from ..store.redis import split_prefix
from ..tasks import cancel_and_wait
from . import CART_TOPIC, SENT, CartHandler, CartMessage, EventHandler, HeardHandler, new_process_id, tell_heard

log = logging.getLogger("livecart.bus")



class RedisBus:
    """One connection listens (pub/sub), one publishes; publishes go out in order, batched."""

    def __init__(self, url: str) -> None:
        self.process_id = new_process_id()
        self.reconnected: list[Callable[[], Awaitable[None]]] = []
        self.heard: list[HeardHandler] = []
        url, prefix = split_prefix(url)  # the same `?prefix=` as the store's keys
        self._prefix = prefix
        self._redis = self._client(url)
        self._pubsub = self._redis.pubsub()
        self._carts: dict[str, CartHandler] = {}
        self._events: dict[str, list[EventHandler]] = {}
        self._topics: dict[str, str] = {}  # event channel → its topic
        self._on_demand: set[str] = set()  # event channels subscribed only while followed
        self._followers: dict[str, int] = {}
        self._demand_lock = asyncio.Lock()  # subscribe/unsubscribe of on-demand topics, in order
        self._confirmed: dict[str, asyncio.Event] = {}
        self._outbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=100_000)
        self._tasks: list[asyncio.Task[None]] = []

    # The seams the cluster bus (bus/redis_cluster.py) swaps for sharded pub/sub.
    SUBSCRIBED, MESSAGE = "subscribe", "message"

    def _client(self, url: str) -> Any:
        return aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    async def _subscribe(self, *channels: str) -> None:
        await self._pubsub.subscribe(*channels)

    async def _unsubscribe(self, channel: str) -> None:
        await self._pubsub.unsubscribe(channel)

    def _send(self, pipe: Any, channel: str, data: bytes) -> None:
        pipe.publish(channel, data)

    async def _next_message(self) -> Any:
        return await self._pubsub.get_message(timeout=1.0)

    def _cart_channel(self, cart_id: str) -> str:
        # Same hash tag as the cart's keys: with Redis Cluster's sharded pub/sub this
        # channel lives on the node that owns the cart.
        return f"{self._prefix}{{c:{cart_id}}}:bus"

    def _event_channel(self, topic: str) -> str:
        return f"{self._prefix}events:{topic}"

    async def start(self) -> None:
        await self._subscribe_all()
        self._tasks = [asyncio.ensure_future(self._listen()), asyncio.ensure_future(self._publish())]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)  # a single cancel can be lost mid-command (see tasks.py)
        await self._pubsub.aclose()
        await self._redis.aclose()

    # -- carts -------------------------------------------------------------------------

    async def join_cart(self, cart_id: str, handler: CartHandler) -> None:
        channel = self._cart_channel(cart_id)
        self._carts[channel] = handler
        confirmed = self._confirmed[channel] = asyncio.Event()
        await self._subscribe(channel)
        # Wait for Redis to confirm, so nothing published from here on is missed.
        await asyncio.wait_for(confirmed.wait(), timeout=3)

    async def leave_cart(self, cart_id: str) -> None:
        channel = self._cart_channel(cart_id)
        self._carts.pop(channel, None)
        self._confirmed.pop(channel, None)
        try:
            await self._unsubscribe(channel)
        except RedisError:
            pass  # not subscribed any more after a reconnect anyway

    def publish_cart(self, cart_id: str, kind: str, seq: int, payload: bytes) -> None:
        # The sender's id goes as a pair with the send time: a process of the version before takes the
        # pair for an origin that is not its own and applies the message as ever (mixed versions relay).
        data = msgpack.packb(((self.process_id, now_ms()), kind, seq, payload))
        self._enqueue(self._cart_channel(cart_id), data)

    # -- events ------------------------------------------------------------------------

    def publish_event(self, topic: str, event: dict[str, Any]) -> None:
        # One more key, which the receiving bus takes off again (a process of the version before passes it
        # on: its handlers read the keys they know).
        self._enqueue(self._event_channel(topic), msgpack.packb({**event, SENT: now_ms()}))

    def on_event(self, topic: str, handler: EventHandler, on_demand: bool = False) -> None:
        channel = self._event_channel(topic)
        self._events.setdefault(channel, []).append(handler)
        self._topics[channel] = topic  # the label lag is heard under: topics are the code's, a bounded set
        if on_demand:
            self._on_demand.add(channel)

    async def follow(self, topic: str) -> None:
        channel = self._event_channel(topic)
        self._followers[channel] = self._followers.get(channel, 0) + 1
        if channel not in self._on_demand:
            return  # always subscribed
        async with self._demand_lock:
            confirmed = self._confirmed.get(channel)
            if confirmed is None:
                confirmed = self._confirmed[channel] = asyncio.Event()
                await self._subscribe(channel)
        # Later readers wait for the same confirmation: nothing published after it is missed.
        await asyncio.wait_for(confirmed.wait(), timeout=3)

    def unfollow(self, topic: str) -> None:
        channel = self._event_channel(topic)
        left = self._followers[channel] = self._followers.get(channel, 1) - 1
        if left <= 0 and channel in self._on_demand:
            self._tasks.append(asyncio.ensure_future(self._drop_demand(channel)))
            self._tasks = [t for t in self._tasks if not t.done()]

    async def _drop_demand(self, channel: str) -> None:
        async with self._demand_lock:
            if self._followers.get(channel, 0) > 0 or self._confirmed.pop(channel, None) is None:
                return  # followed again meanwhile, or already unsubscribed
            self._followers.pop(channel, None)
            try:
                await self._unsubscribe(channel)
            except RedisError:
                pass  # not subscribed any more after a reconnect anyway

    # -- the two loops -------------------------------------------------------------------

    def _enqueue(self, channel: str, data: bytes) -> None:
        try:
            self._outbox.put_nowait((channel, data))
        except asyncio.QueueFull:
            log.warning("bus outbox full; dropping a message (receivers catch up from the log)")

    async def _publish(self) -> None:
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty() and len(batch) < 500:
                batch.append(self._outbox.get_nowait())
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for channel, data in batch:
                        self._send(pipe, channel, data)
                    await pipe.execute()
            except (ConnectionError, TimeoutError) as exc:
                # Updates are in the log already: receivers catch up after their reconnect.
                log.warning("bus publish failed (%s); %d messages dropped", exc, len(batch))
                await asyncio.sleep(0.2)

    async def _listen(self) -> None:
        lost, delay = False, 0.1
        while True:
            try:
                # After a lost connection this call reconnects, and redis-py subscribes
                # again to every channel it had.
                message = await self._next_message()
            except (ConnectionError, TimeoutError, OSError) as exc:
                if not lost:
                    log.warning("bus connection lost (%s); reconnecting", exc)
                lost = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if lost:
                lost, delay = False, 0.1
                log.info("bus reconnected; rooms catch up from the log")
                for callback in self.reconnected:
                    asyncio.ensure_future(callback())
            if message is None:
                continue
            if message["type"] == self.SUBSCRIBED:
                event = self._confirmed.get(_text(message["channel"]))
                if event:
                    event.set()
            elif message["type"] == self.MESSAGE:
                self._dispatch(_text(message["channel"]), message["data"])

    def _dispatch(self, channel: str, data: bytes) -> None:
        try:
            if channel in self._carts:
                origin, kind, seq, payload = msgpack.unpackb(data)
                origin, sent = origin if isinstance(origin, list) else (origin, None)  # (id, sent), or an older id
                if origin != self.process_id:
                    tell_heard(self.heard, CART_TOPIC, sent)
                    self._carts[channel](CartMessage(origin, kind, seq, payload, sent))
            elif channel in self._events:
                event = msgpack.unpackb(data)
                sent = event.pop(SENT, None) if isinstance(event, dict) else None
                tell_heard(self.heard, self._topics[channel], sent)
                for handler in self._events[channel]:
                    handler(event)
        except Exception:
            log.exception("bus message on %s could not be handled", channel)

    async def _subscribe_all(self) -> None:
        # Always at least one channel, so the listening connection exists from the start.
        always = [c for c in self._events if c not in self._on_demand]
        await self._subscribe(self._event_channel("_process"), *always)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
