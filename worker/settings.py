"""Settings of the worker process, from the environment and `.env`."""

from __future__ import annotations

import os
import socket

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from taskstore.config import StoreConfig
from taskstore.logs import LogConfig
from worker.retry import RetryPolicy


def default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"


class WorkerSettings(BaseSettings, StoreConfig, LogConfig):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    max_concurrency: int = Field(5, ge=1)
    task_timeout: float = Field(300.0, gt=0)
    max_retries: int = Field(3, ge=0)
    retry_backoff: float = Field(1.0, ge=0, description="seconds before the first retry; doubles after")
    retry_backoff_max: float = Field(60.0, ge=0)
    retry_on_timeout: bool = Field(False, description="retry an attempt that ran past TASK_TIMEOUT")
    progress_rate: float = Field(
        10.0, ge=0, description="progress writes per task per second, the latest kept; 0 = every one"
    )
    visibility_timeout: float = Field(30.0, gt=0)
    shutdown_grace: float = Field(10.0, ge=0)
    consumer_name: str = Field(default_factory=default_consumer)
    handler: str = Field("worker.handlers:demo", description="handler of the default kind")
    handlers: str = Field(
        "", description="kinds served: 'kind=module:function,...' or one 'module:registry' (worker.kinds)"
    )
    read_block_ms: int = Field(500, ge=1)
    heartbeat_interval: float = Field(2.0, gt=0, description="seconds between heartbeats (GET /workers)")
    metrics_port: int = Field(0, ge=0, le=65535, description="serve /metrics on this port; 0 = off")

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry policy of the tasks these settings run (a kind's own: worker.kinds)."""
        return RetryPolicy(
            self.max_attempts, self.retry_backoff, self.retry_backoff_max, self.retry_on_timeout
        )

    @property
    def lease_interval(self) -> float:
        """Seconds between lease renewals, which are also the cancel checks (so at most 0.5)."""
        return min(0.5, self.visibility_timeout / 3)

    @property
    def reclaim_interval(self) -> float:
        """Seconds between XAUTOCLAIM scans for entries whose worker died."""
        return min(5.0, self.visibility_timeout / 2)

    @property
    def visibility_ms(self) -> int:
        return max(1, int(self.visibility_timeout * 1000))
