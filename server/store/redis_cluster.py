"""The Redis Cluster store: the Redis store's keys and scripts over redis-py's asyncio cluster client.

Every script names keys of one hash tag (`{c:<cart>}`, `{s:<sku>}`, `{r:<kind>}`) or a single key,
so each runs on one slot; redis-py loads a script on the node that serves its slot when that node
answers NOSCRIPT (also after a failover, on the promoted replica).

Durability (the exact guarantee): Redis Cluster replicates asynchronously, so a write that
acknowledges to a client (an append, whose seq the room waits for; a new cart) is followed by
`WAIT 1` on the same connection, in the same pipeline, when its master has a replica. It is
acknowledged only once a replica has it, so a master failover loses nothing acknowledged; when no
replica answers within WAIT_TIMEOUT_MS the write reports an error (it may still be on the master).
Whether a master has a replica is asked of the master itself (`INFO replication`, at most every
REPLICA_CHECK_SECONDS), not read from the slots map: nodes learn of other nodes' replicas by
gossip, so a map may list none that exist. A master without replicas acknowledges on its own
`appendfsync`. Stock needs no WAIT to never
oversell: a sale is one script on the SKU's master that checks on-hand, and a promoted replica can
only have forgotten recent holds (checkout then finds them missing), never sold more than on hand.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from .redis import MAX_CONNECTIONS, TIMEOUT, RedisStore, split_prefix

SCHEME = "redis+cluster://"
WAIT_TIMEOUT_MS = 2000  # how long an acknowledged write waits for one replica's copy
REPLICA_CHECK_SECONDS = 5.0  # how long a master's answer to "have you a replica?" is believed


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


class Replicas:
    """Which masters have a replica, as each master says (`connected_slaves`), asked again after
    REPLICA_CHECK_SECONDS; a master that cannot be asked is taken to have one (WAIT then decides)."""

    def __init__(self, client: RedisCluster) -> None:
        self.client = client
        self.known: dict[str, tuple[float, bool]] = {}  # node name -> (asked at, has a replica)

    async def of(self, key: str) -> tuple[ClusterNode, bool]:
        """The master serving `key` and whether a write there must wait for a replica."""
        node = self.client.get_node_from_key(key)
        now = time.monotonic()
        asked = self.known.get(node.name)
        if asked is None or now - asked[0] > REPLICA_CHECK_SECONDS:
            try:
                info = await self.client.execute_command("INFO", "replication", target_nodes=node)
                replicated = int(info.get("connected_slaves", 0)) > 0
            except RedisError:
                replicated = True
            asked = self.known[node.name] = (now, replicated)
        return node, asked[1]


class ReplicatedScript:
    """A registered script whose every call is acknowledged only once a replica has its effect:
    EVALSHA then `WAIT 1` in one pipeline, so both go down the connection that wrote."""

    def __init__(self, client: RedisCluster, script: AsyncScript, replicas: Replicas) -> None:
        self.client, self.script, self.replicas = client, script, replicas

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._call(keys, args)
        except NoScriptError:  # a promoted replica has an empty script cache; NOSCRIPT ran nothing
            await self.client.script_load(self.script.script)
            return await self._call(keys, args)

    async def _call(self, keys: list[str], args: list[Any]) -> Any:
        node, replicated = await self.replicas.of(keys[0])
        if not replicated:
            return await self.script(keys, args)
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
        self.replicas = Replicas(self.r)
        for name in ("_create", "_compact", "_set_on_hand", "_put_record", "_take_record"):
            setattr(self, name, ReplicatedScript(self.r, getattr(self, name), self.replicas))

    async def open(self) -> None:
        await self.r.initialize()  # a wrong seed list fails at startup, not at the first edit
        await super().open()

    async def _evalsha_pipeline(self, calls: list[tuple[list[str], list[bytes]]]) -> list[Any]:
        """The appends, then `WAIT 1` on each master (with replicas) that took some, on the
        connection that wrote them; a master's appends fail when no replica acknowledged."""
        waits: dict[str, ClusterNode] = {}
        node_of: list[str] = []
        for keys, _ in calls:
            node, replicated = await self.replicas.of(keys[0])
            node_of.append(node.name)
            if replicated:
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
