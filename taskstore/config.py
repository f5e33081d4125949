"""The settings both processes need to reach the same data: a plain model, no environment.

Each process's own Settings (pydantic-settings) inherits these fields and reads them from its
environment; taskstore itself never does.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field

from taskstore.keys import Keys
from taskstore.shards import MAX_SHARDS
from taskstore.topology import Topology

_QUERY_PASSWORD = re.compile(r"((?:^|&)password=)[^&]*", re.IGNORECASE)


class StoreConfig(BaseModel):
    redis_url: str = "redis://localhost:6379/0"
    redis_cluster: bool | None = Field(None, description="true|false overrides detecting a Redis Cluster")
    queue_shards: int = Field(
        0, ge=0, le=MAX_SHARDS, description="queue shards; 0 = 1 on a single node, 16 on a cluster"
    )
    key_prefix: str = "taskcast"
    queue_key: str = "task_stream"
    cache_ttl: int = Field(600, ge=1, description="seconds a DONE result answers identical requests")
    result_expiry: int = Field(86400, ge=1, description="seconds a task's hash lives after its last change")

    @property
    def redis_url_for_logs(self) -> str:
        """REDIS_URL with its password masked: the only form of it a log line may show."""
        return mask_url(self.redis_url)

    def keys_for(self, topology: Topology) -> Keys:
        """The key names on `topology` (its default shard count unless QUEUE_SHARDS is set)."""
        shard_count = topology.shards(self.queue_shards)
        return Keys(self.key_prefix, self.queue_key, shard_count, legacy_queue=not topology.cluster)


def mask_url(url: str) -> str:
    """`url` with its password replaced by `***`: redis://user:***@host:6379/0.

    redis-py also takes the password as a query parameter (`?password=`), masked the same way.
    """
    base, sep, query = url.partition("?")
    parts = urlsplit(base)
    if parts.password is not None:
        user = f"{parts.username}:" if parts.username else ":"
        host = parts.netloc.rpartition("@")[2]
        base = urlunsplit(parts._replace(netloc=f"{user}***@{host}"))
    return base + sep + _QUERY_PASSWORD.sub(r"\1***", query)
