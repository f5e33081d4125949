"""Settings of the worker process, from the environment and `.env`."""

from __future__ import annotations

import os
import socket

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    redis_url: str = "redis://localhost:6379/0"
    key_prefix: str = "taskcast"
    queue_key: str = "task_stream"
    cache_ttl: int = Field(600, ge=1)
    result_expiry: int = Field(86400, ge=1)
    max_concurrency: int = Field(5, ge=1)
    task_timeout: float = Field(300.0, gt=0)
    max_retries: int = Field(3, ge=0)
    visibility_timeout: float = Field(30.0, gt=0)
    shutdown_grace: float = Field(10.0, ge=0)
    consumer_name: str = Field(default_factory=default_consumer)
    handler: str = "worker.handlers:demo"
    read_block_ms: int = Field(500, ge=1)
