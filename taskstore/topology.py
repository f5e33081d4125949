"""Single node or Redis Cluster: the one module that knows the difference.

REDIS_CLUSTER=true|false ─▶ as told
unset ─▶ INFO cluster on the REDIS_URL node: cluster_enabled:1 ─▶ cluster
cluster ─▶ RedisCluster client (any node's URL is enough: it discovers the rest)
           events go out with SPUBLISH (sharded pub/sub), default QUEUE_SHARDS 16
single  ─▶ Redis client, PUBLISH, default QUEUE_SHARDS 1
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from taskstore.connection import PackedConnection

log = logging.getLogger(__name__)

Client = Redis | RedisCluster
Pipe = Pipeline | ClusterPipeline
CLUSTER_DEFAULT_SHARDS = 16

# Redis is not answering now; trying again later is right. On a cluster this includes the
# seconds of a failover (CLUSTERDOWN, TRYAGAIN, a slot briefly without a primary). BusyLoading
# (a restart replaying its AOF) is a ConnectionError.
UNAVAILABLE: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    ClusterDownError,
    TryAgainError,
    RedisClusterException,
)
# Any failure of Redis or of the cluster client (which raises some outside RedisError).
REDIS_FAILURE: tuple[type[Exception], ...] = (RedisError, OSError, RedisClusterException)


@dataclass(frozen=True, slots=True)
class Topology:
    cluster: bool

    @property
    def publish(self) -> str:
        """The command the transition script publishes events with."""
        return "SPUBLISH" if self.cluster else "PUBLISH"

    @property
    def name(self) -> str:
        return "Redis Cluster" if self.cluster else "single Redis node"

    def shards(self, configured: int) -> int:
        """QUEUE_SHARDS as configured, or the topology's default when 0."""
        if configured > 0:
            return configured
        return CLUSTER_DEFAULT_SHARDS if self.cluster else 1


async def detect(url: str, override: bool | None = None) -> Topology:
    """The topology of the Redis at `url`; `override` (REDIS_CLUSTER) wins when set."""
    if override is not None:
        return Topology(cluster=override)
    probe = Redis.from_url(url, client_name="taskcast-probe")
    try:
        info: dict[str, Any] = await probe.info("cluster")
    finally:
        await probe.aclose()
    return Topology(cluster=bool(int(info.get("cluster_enabled", 0))))


def make_client(url: str, topology: Topology, **options: Any) -> Client:
    """A client for `url` on `topology`; `options` go to every connection."""
    if topology.cluster:
        cluster = RedisCluster.from_url(url, **options)
        if url.startswith("redis://"):
            _pack_in_c(cluster)
        return cluster
    if url.startswith("redis://"):
        options.setdefault("connection_class", PackedConnection)
    return Redis.from_url(url, **options)


async def call(client: Client, key: str, *args: Any) -> Any:
    """One command on `key`'s primary, straight (see route()); after a redirect, untargeted.

    Cheaper than a pipeline of one on a cluster: no per-node tasks to gather.
    """
    target = route(client, key)
    try:
        return await client.execute_command(*args, **target)
    except AskError:  # the slot moved: let redis-py find its new primary
        return await client.execute_command(*args)
    except RedisConnectionError:
        if not target:
            raise
        # The primary died (failover): redis-py refreshes its slot map, and retries, only for
        # an untargeted command; a targeted one would go on failing on the stale map.
        return await client.execute_command(*args)


def primaries_of(client: Client, keys: list[str]) -> list[dict[str, Any]]:
    """`route()` arguments for each primary that holds one of `keys` (one entry on a single node)."""
    if not isinstance(client, RedisCluster):
        return [{}]
    targets = {route(client, k).get("target_nodes") for k in keys}
    return [{"target_nodes": node} for node in targets if node is not None]


def _pack_in_c(cluster: RedisCluster) -> None:
    """Every node connection a PackedConnection, as on a single node (taskstore/connection.py).

    RedisCluster takes no connection class (its constructor sets redis-py's own), so it is set
    where its nodes are made: the node manager's connection arguments and the start-up nodes.
    """
    cluster.nodes_manager.connection_kwargs["connection_class"] = PackedConnection
    for node in cluster.nodes_manager.startup_nodes.values():
        node.connection_class = PackedConnection


def is_cluster(client: Client) -> bool:
    return isinstance(client, RedisCluster)


def route(client: Client, key: str) -> dict[str, Any]:
    """Keyword arguments that send a command straight to `key`'s primary on a cluster.

    redis-py cannot find the keys of XREAD and XREADGROUP by itself and asks the server
    (COMMAND GETKEYS): a second round trip per read. A stale slot map makes the targeted command
    fail with a redirect (AskError); callers then send it untargeted, and redis-py follows it.
    """
    if isinstance(client, RedisCluster):
        try:
            return {"target_nodes": client.get_node_from_key(key)}
        except SlotNotCoveredError:  # no slot map yet (first command) or a failover under way
            return {}
    return {}


def describe(masked_url: str, topology: Topology, shard_count: int) -> str:
    """One log line: where (the URL with its password masked: StoreConfig.redis_url_for_logs),
    which topology, how many queue shards."""
    return f"Redis at {masked_url}: {topology.name}, {shard_count} queue shard(s)"
