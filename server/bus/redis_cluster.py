"""The Redis Cluster bus: the Redis bus over sharded pub/sub (SPUBLISH/SSUBSCRIBE).

A cart's channel carries the cart's hash tag, so it lives on the master that owns the cart's
keys, and a process subscribes only to the carts it has rooms open for: a message reaches the
one node and the processes that serve that cart, not every node and every process (classic
PUBLISH in a cluster is broadcast to all nodes). Event topics are sharded channels too, one slot
per topic. After a failover redis-py moves the subscriptions to the promoted replica; messages in
between are lost, which the bus contract allows (rooms catch up from the log, see `reconnected`).
"""
from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster

from ..store.redis_cluster import cluster_nodes
from .redis import RedisBus


class RedisClusterBus(RedisBus):
    SUBSCRIBED, MESSAGE = "ssubscribe", "smessage"

    def _client(self, url: str) -> Any:
        return RedisCluster(startup_nodes=cluster_nodes(url), socket_timeout=2, socket_connect_timeout=2)

    async def start(self) -> None:
        await self._redis.initialize()
        await super().start()

    async def _subscribe(self, *channels: str) -> None:
        await self._pubsub.ssubscribe(*channels)

    async def _unsubscribe(self, channel: str) -> None:
        await self._pubsub.sunsubscribe(channel)

    def _send(self, pipe: Any, channel: str, data: bytes) -> None:
        pipe.spublish(channel, data)

    async def _next_message(self) -> Any:
        return await self._pubsub.get_sharded_message(timeout=1.0)
