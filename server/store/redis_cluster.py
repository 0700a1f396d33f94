"""The Redis Cluster store: the Redis store's keys and scripts over redis-py's asyncio cluster client.

Every script names keys of one hash tag (`{c:<cart>}`, `{s:<sku>}`, `{r:<kind>}`) or a single key,
so each runs on one slot; redis-py loads a script on the node that serves its slot when that node
answers NOSCRIPT (also after a failover, on the promoted replica).

Durability (the exact guarantee): Redis Cluster replicates asynchronously, so a write that
acknowledges to a client (an append, whose seq the room waits for; a new cart) is followed by
`WAIT 1` on the same connection, in the same pipeline, when its master has a replica. It is
acknowledged only once a replica has it, so a master failover loses nothing acknowledged; when no
replica answers within WAIT_TIMEOUT_MS the write reports an error (it may still be on the master).
A master without replicas acknowledges on its own `appendfsync`. Stock needs no WAIT to never
oversell: a sale is one script on the SKU's master that checks on-hand, and a promoted replica can
only have forgotten recent holds (checkout then finds them missing), never sold more than on hand.
"""
from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from .redis import MAX_CONNECTIONS, TIMEOUT, RedisStore, split_prefix

SCHEME = "redis+cluster://"
WAIT_TIMEOUT_MS = 2000  # how long an acknowledged write waits for one replica's copy


def cluster_nodes(url: str) -> list[ClusterNode]:
    """The seed nodes of `redis+cluster://host:port,host:port/…`."""
    netloc = urlsplit(url).netloc
    nodes = []
    for part in netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"bad cluster node {part!r} in {url!r} (want host:port,host:port,…)")
        nodes.append(ClusterNode(host, int(port)))
    return nodes


class WaitingCluster(RedisCluster):
    """redis-py's cluster client with at most `max_connections` commands and pipelines at once.

    Its node pools raise MaxConnectionsError once `max_connections` are busy (the single-node
    store's BlockingConnectionPool waits instead): a burst of readers (a flash sale's viewers each
    reading a stock level) would get errors. Each command or pipeline takes at most one connection
    per node, so waiting for a slot here keeps every node's pool within its bound."""

    def __init__(self, *args: Any, max_connections: int, **kwargs: Any) -> None:
        super().__init__(*args, max_connections=max_connections, **kwargs)
        self._slots = asyncio.Semaphore(max_connections)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self._slots:
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        pipe = super().pipeline(*args, **kwargs)
        execute = pipe.execute

        async def waiting(*a: Any, **kw: Any) -> Any:
            async with self._slots:
                return await execute(*a, **kw)
        pipe.execute = waiting  # type: ignore[method-assign]
        return pipe


def connect_cluster(url: str) -> tuple[RedisCluster, str]:
    """A cluster client for `url` and the key prefix (`?prefix=`, default `livecart:`)."""
    url, prefix = split_prefix(url)
    client = WaitingCluster(
        startup_nodes=cluster_nodes(url), decode_responses=False, max_connections=MAX_CONNECTIONS,
        # During a failover redis-py re-reads the slots map and follows MOVED (its default retry).
        socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
    return client, prefix


def has_replica(client: RedisCluster, key: str) -> bool:
    """Whether the master serving `key` has a replica (the slots map, refreshed on every MOVED)."""
    return len(client.nodes_manager.slots_cache.get(client.keyslot(key), ())) > 1


class ReplicatedScript:
    """A registered script whose every call is acknowledged only once a replica has its effect:
    EVALSHA then `WAIT 1` in one pipeline, so both go down the connection that wrote."""

    def __init__(self, client: RedisCluster, script: AsyncScript) -> None:
        self.client, self.script = client, script

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._call(keys, args)
        except NoScriptError:  # a promoted replica has an empty script cache; NOSCRIPT ran nothing
            await self.client.script_load(self.script.script)
            return await self._call(keys, args)

    async def _call(self, keys: list[str], args: list[Any]) -> Any:
        if not has_replica(self.client, keys[0]):
            return await self.script(keys, args)
        node = self.client.get_node_from_key(keys[0])
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.evalsha(self.script.sha, len(keys), *keys, *args)
            pipe.execute_command("WAIT", 1, WAIT_TIMEOUT_MS, target_nodes=node)
            reply, acked = await pipe.execute()
        if int(acked) < 1:
            raise RedisError(f"no replica of {node.name} acknowledged the write in time")
        return reply


class RedisClusterStore(RedisStore):
    """The Redis store on a cluster: the same keys and scripts, one slot per script; writes
    that acknowledge (appends, cart records, records such as orders, stock) wait for a replica."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        for name in ("_create", "_compact", "_set_on_hand", "_put_record", "_take_record"):
            setattr(self, name, ReplicatedScript(self.r, getattr(self, name)))

    async def open(self) -> None:
        await self.r.initialize()  # a wrong seed list fails at startup, not at the first edit
        await super().open()

    async def _evalsha_pipeline(self, calls: list[tuple[list[str], list[bytes]]]) -> list[Any]:
        """The appends, then `WAIT 1` on each master (with replicas) that took some, on the
        connection that wrote them; a master's appends fail when no replica acknowledged."""
        waits: dict[str, ClusterNode] = {}
        node_of: list[str] = []
        for keys, _ in calls:
            node = self.r.get_node_from_key(keys[0])
            node_of.append(node.name)
            if has_replica(self.r, keys[0]):
                waits[node.name] = node
        async with self.r.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                pipe.evalsha(self._append.sha, len(keys), *keys, *args)
            for node in waits.values():
                pipe.execute_command("WAIT", 1, WAIT_TIMEOUT_MS, target_nodes=node)
            replies = await pipe.execute(raise_on_error=False)
        results, acks = replies[:len(calls)], dict(zip(waits, replies[len(calls):]))
        for i, name in enumerate(node_of):
            ack = acks.get(name)
            if name in acks and (isinstance(ack, BaseException) or int(ack) < 1):
                if not isinstance(results[i], BaseException):
                    results[i] = RedisError(f"no replica of {name} acknowledged the append in time")
        return results
