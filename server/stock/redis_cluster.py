"""The stock authority on Redis Cluster: RedisStock's scripts (one SKU slot each), every decision
acknowledged only once a replica has it, so a master failover forgets no hold or sale it answered."""
from __future__ import annotations

from typing import Any, Callable
import time

from ..store.redis_cluster import Replicas, ReplicatedScript
from .redis import RedisStock


class RedisClusterStock(RedisStock):
    def __init__(self, url: str, hold_ttl: float, clock: Callable[[], float] = time.time,
                 sweep_interval: float = 0.2) -> None:
        super().__init__(url, hold_ttl, clock, sweep_interval)
        replicas = Replicas(self.r)
        self._scripts: dict[str, Any] = {  # type: ignore[assignment]
            name: ReplicatedScript(self.r, script, replicas) for name, script in self._scripts.items()}
