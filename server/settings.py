"""Settings of the API process, from the environment and `.env`."""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.access.tokens import WatchTokens
from taskstore.config import StoreConfig
from taskstore.kinds import parse_kinds
from taskstore.logs import LogConfig


class Settings(BaseSettings, StoreConfig, LogConfig):
    # A refused value is not echoed: it may be a secret.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    max_body_bytes: int = Field(65536, ge=64)
    max_queue_length: int = Field(100_000, ge=0, description="0 means no limit")
    retry_after: int = Field(1, ge=1)
    redis_max_connections: int = Field(256, ge=4)
    sse_ping_seconds: float = Field(15.0, gt=0)
    send_timeout: float = Field(10.0, gt=0)
    stream_buffer_bytes: int = Field(
        32768,
        ge=0,
        description="per stream: SO_SNDBUF cap and uvicorn's write buffer; 0 leaves both as they are",
    )
    max_subscriptions_per_socket: int = Field(1000, ge=1)
    max_streams: int = Field(20_000, ge=1, description="open SSE + WebSocket subscribers per process")
    hub_resync_seconds: float = Field(30.0, gt=0)
    worker_gone_after: float = Field(
        10.0, gt=0, description="seconds without a heartbeat after which GET /workers drops a worker"
    )
    submit_wait_replicas: int = Field(
        0, ge=0, description="replicas a submit waits for (Redis WAIT) before it answers; 0 = none"
    )
    submit_wait_ms: int = Field(100, ge=1, description="the most a submit waits for those replicas")
    static_dir: str = "static"
    validate_demo_params: bool = Field(
        True, description="422 for params beyond the demo handler's limits; false when HANDLER is your own"
    )
    api_key: SecretStr | None = Field(
        None, description="when set, every call but health, docs and the page needs it (or a watch token)"
    )
    token_secret: SecretStr | None = Field(
        None, min_length=32, description="signs watch tokens (HS256); derived from API_KEY when unset"
    )
    token_secret_previous: SecretStr | None = Field(
        None, min_length=32, description="still accepted while secrets rotate"
    )
    watch_token_ttl: int = Field(3600, ge=1, description="seconds a watch token from POST /tasks is good for")
    cors_origins: str = Field("", description="comma-separated origins allowed by CORS and on WebSockets")
    task_kinds: str = Field(
        "default", description="comma-separated kinds POST /tasks accepts; a body without one is 'default'"
    )
    max_delay: float = Field(86400.0, ge=0, description="largest `delay` of a scheduled task, seconds")
    coalesce: bool = Field(True, description="identical requests in flight share one task")
    idempotency_ttl: int = Field(86400, ge=1, description="seconds an Idempotency-Key is remembered")

    @field_validator("task_kinds")
    @classmethod
    def _kinds_are_names(cls, value: str) -> str:
        if not parse_kinds(value):
            raise ValueError("TASK_KINDS names no kind")
        return value

    @property
    def kinds(self) -> tuple[str, ...]:
        return parse_kinds(self.task_kinds)

    @property
    def api_key_value(self) -> str | None:
        """The API key; None when unset or empty (`API_KEY=`): the API is open."""
        return self.api_key.get_secret_value() or None if self.api_key else None

    @property
    def watch_tokens(self) -> WatchTokens | None:
        """The watch-token signer and checker; None while the API is open (no API_KEY)."""
        key = self.api_key_value
        if key is None:
            return None
        previous = self.token_secret_previous.get_secret_value() if self.token_secret_previous else None
        if self.token_secret is not None:
            secret = self.token_secret.get_secret_value()
        else:  # derived, not random: every API process of a deployment must accept every token
            secret = hmac.new(key.encode(), b"taskcast watch tokens", hashlib.sha256).hexdigest()
        return WatchTokens(secret, previous, self.watch_token_ttl)

    @property
    def allowed_origins(self) -> frozenset[str]:
        return frozenset(o.strip() for o in self.cors_origins.split(",") if o.strip())


@lru_cache
def get_settings() -> Settings:
    return Settings()
