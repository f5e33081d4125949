"""The settings both processes need to reach the same data: a plain model, no environment.

Each process's own Settings (pydantic-settings) inherits these fields and reads them from its
environment; taskstore itself never does.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field

from taskstore.keys import Keys

_QUERY_PASSWORD = re.compile(r"((?:^|&)password=)[^&]*", re.IGNORECASE)


class StoreConfig(BaseModel):
    redis_url: str = "redis://localhost:6379/0"
    key_prefix: str = "taskcast"
    queue_key: str = "task_stream"
    cache_ttl: int = Field(600, ge=1, description="seconds a DONE result answers identical requests")
    result_expiry: int = Field(86400, ge=1, description="seconds a task's hash lives after its last change")

    @property
    def redis_url_for_logs(self) -> str:
        """REDIS_URL with its password masked: the only form of it a log line may show."""
        return mask_url(self.redis_url)

    @property
    def keys(self) -> Keys:
        return Keys(prefix=self.key_prefix, queue=self.queue_key)


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
