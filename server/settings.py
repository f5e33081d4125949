"""Settings of the API process, from the environment and `.env`."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from taskstore.config import StoreConfig
from taskstore.logs import LogConfig


class Settings(BaseSettings, StoreConfig, LogConfig):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    max_body_bytes: int = Field(65536, ge=64)
    max_queue_length: int = Field(100_000, ge=0, description="0 means no limit")
    retry_after: int = Field(1, ge=1)
    redis_max_connections: int = Field(256, ge=4)
    sse_ping_seconds: float = Field(15.0, gt=0)
    send_timeout: float = Field(10.0, gt=0)
    max_subscriptions_per_socket: int = Field(1000, ge=1)
    max_streams: int = Field(20_000, ge=1, description="open SSE + WebSocket subscribers per process")
    hub_resync_seconds: float = Field(30.0, gt=0)
    static_dir: str = "static"
    api_key: str | None = Field(
        None, description="when set, every call but health, docs and the page needs it"
    )
    cors_origins: str = Field("", description="comma-separated origins allowed by CORS and on WebSockets")

    @property
    def allowed_origins(self) -> frozenset[str]:
        return frozenset(o.strip() for o in self.cors_origins.split(",") if o.strip())


@lru_cache
def get_settings() -> Settings:
    return Settings()
