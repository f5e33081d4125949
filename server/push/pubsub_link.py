"""The hub's one pub/sub connection: connect with confirmed subscriptions, read, notice silence.

It has its own Redis client with retries off: a broken connection must surface to the hub,
which then resubscribes and resyncs, instead of redis-py reconnecting silently and the
messages sent meanwhile being lost without anyone knowing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

READ_TIMEOUT = 1.0
PING_AFTER = 5.0  # seconds of silence before a PING, to find a half-open socket
CONFIRM_TIMEOUT = 5.0

Message = dict[str, object]


class PubSubLink:
    def __init__(self, redis_url: str, on_message: Callable[[Message], None]) -> None:
        self._redis = Redis.from_url(redis_url, retry=Retry(NoBackoff(), 0), client_name="taskcast-api-hub")
        self._on_message = on_message
        self._pubsub: PubSub | None = None
        self.last_message = 0.0

    @property
    def connected(self) -> bool:
        return self._pubsub is not None

    async def connect(self, wanted: Callable[[], set[str]]) -> None:
        """A fresh connection subscribed to every channel `wanted()` names, all confirmed."""
        await self.close()
        pubsub = self._redis.pubsub()
        subscribed: set[str] = set()
        # Watchers may arrive while we wait for confirmations: loop until none is missing.
        while missing := wanted() - subscribed:
            await pubsub.subscribe(*missing)
            await self._await_confirmations(pubsub, missing)
            subscribed |= missing
        self._pubsub = pubsub
        self.last_message = time.monotonic()

    async def subscribe(self, *channels: str) -> None:
        """Send SUBSCRIBE; its confirmations arrive through `read()` like any message."""
        if self._pubsub is not None:
            await self._pubsub.subscribe(*channels)

    async def unsubscribe(self, *channels: str) -> None:
        if self._pubsub is not None:
            await self._pubsub.unsubscribe(*channels)

    async def read(self) -> None:
        """Hand the next message (if one comes within READ_TIMEOUT) to `on_message`.

        ConnectionError when there is no connection or it stays silent even to a PING.
        """
        pubsub = self._pubsub
        if pubsub is None:
            raise ConnectionError("no pub/sub connection")
        message = await pubsub.get_message(timeout=READ_TIMEOUT)
        if message is not None:
            self.last_message = time.monotonic()
            self._on_message(message)
            return
        silence = time.monotonic() - self.last_message
        if silence > 2 * PING_AFTER:
            raise ConnectionError(f"pub/sub connection silent for {silence:.1f} s, even to PING")
        if silence > PING_AFTER:
            await pubsub.ping()

    async def close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            except (RedisError, OSError):
                pass

    async def aclose(self) -> None:
        await self.close()
        await self._redis.aclose()

    async def _await_confirmations(self, pubsub: PubSub, channels: set[str]) -> None:
        pending = set(channels)
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        while pending:
            if time.monotonic() > deadline:
                raise ConnectionError(
                    f"{len(pending)} SUBSCRIBE confirmations missing after {CONFIRM_TIMEOUT} s"
                )
            message = await pubsub.get_message(timeout=READ_TIMEOUT)
            if message is None:
                continue
            if message["type"] == "subscribe":
                pending.discard(message["channel"].decode())
            else:
                self._on_message(message)
