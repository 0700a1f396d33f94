"""The Redis Cluster store: the Redis store's keys and scripts over redis-py's asyncio cluster client.

Every script names keys of one hash tag (`{c:<cart>}`, `{s:<sku>}`, `{r:<kind>}`) or a single key,
so each runs on one slot; redis-py loads a script on the node that serves its slot when that node
answers NOSCRIPT (also after a failover, on the promoted replica).

Durability (the exact guarantee): Redis Cluster replicates asynchronously. A write is
acknowledged once its master has it (and its `appendfsync`), so a master killed before its replica
copied the last writes loses those (typically < 1 ms of traffic). Stock never oversells through a
failover: holds and sales are decided by one script on the SKU's master, and the promoted replica
can only have fewer holds than were acknowledged, never more sold units than on hand.
`WAIT 1` after acknowledged writes is not done yet: it must run on the very connection that wrote,
which redis-py's cluster pipeline does not expose.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from redis.asyncio.cluster import ClusterNode, RedisCluster

from .redis import MAX_CONNECTIONS, TIMEOUT, RedisStore, split_prefix

SCHEME = "redis+cluster://"


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


def connect_cluster(url: str) -> tuple[RedisCluster, str]:
    """A cluster client for `url` and the key prefix (`?prefix=`, default `livecart:`)."""
    url, prefix = split_prefix(url)
    client = RedisCluster(
        startup_nodes=cluster_nodes(url), decode_responses=False, max_connections=MAX_CONNECTIONS,
        # During a failover redis-py re-reads the slots map and follows MOVED (its default retry).
        socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
    return client, prefix


class RedisClusterStore(RedisStore):
    """The Redis store on a cluster: the same keys and scripts, one slot per script."""

    async def open(self) -> None:
        await self.r.initialize()  # a wrong seed list fails at startup, not at the first edit
        await super().open()
