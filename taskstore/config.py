"""The settings both processes need to reach the same data: a plain model, no environment.

Each process's own Settings (pydantic-settings) inherits these fields and reads them from its
environment; taskstore itself never does.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from taskstore.keys import Keys


class StoreConfig(BaseModel):
    redis_url: str = "redis://localhost:6379/0"
    key_prefix: str = "taskcast"
    queue_key: str = "task_stream"
    cache_ttl: int = Field(600, ge=1, description="seconds a DONE result answers identical requests")
    result_expiry: int = Field(86400, ge=1, description="seconds a task's hash lives after its last change")

    @property
    def keys(self) -> Keys:
        return Keys(prefix=self.key_prefix, queue=self.queue_key)
