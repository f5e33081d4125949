"""The fan-out hub: one Redis pub/sub connection per API process, shared by every subscriber.

    watch(sub, id) ─▶ refcount+1 ─▶ first? SUBSCRIBE and await Redis's confirmation
                  ─▶ snapshot of the hash (batched with other watchers') ─▶ sub.offer(snapshot)
    reader task   ─▶ get_message(timeout) ─▶ decode seq/status once ─▶ offer() to each watcher
                  └▶ error or silence ─▶ reconnect (backoff + jitter) ─▶ resubscribe ─▶ resync
    resync        ─▶ pipelined snapshots of every watched task ─▶ offer() (subscribers drop
                     what they already have), also every HUB_RESYNC_SECONDS

Redis pub/sub is at-most-once; the resyncs are what make delivery of the final state certain.
The reader never awaits a client: `offer()` only replaces a slot and sets an event.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from server.snapshots import Snapshots
from server.subscriber import Event, Subscriber
from taskstore import TaskNotFound, TaskStore, is_terminal

log = logging.getLogger(__name__)

READ_TIMEOUT = 1.0
PING_AFTER = 5.0  # seconds of silence before the reader pings, to find a half-open socket


class TooManyStreams(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit

    def __str__(self) -> str:
        return f"this API process already serves its limit of {self.limit} streams"


def decode_event(payload: bytes) -> Event:
    state = orjson.loads(payload)
    return Event(state["task_id"], int(state["seq"]), payload, is_terminal(state))


class Hub:
    def __init__(self, redis_url: str, store: TaskStore, *, resync_seconds: float, max_streams: int) -> None:
        # Our own client with retries off: a broken connection must surface here, so that we
        # resync after reconnecting instead of redis-py reconnecting silently.
        self._redis = Redis.from_url(redis_url, retry=Retry(NoBackoff(), 0), client_name="taskcast-api-hub")
        self.store = store
        self.keys = store.keys
        self.snapshots = Snapshots(store)
        self.resync_seconds = resync_seconds
        self.max_streams = max_streams
        self._watchers: dict[str, set[Subscriber]] = {}
        self._confirming: dict[str, tuple[asyncio.Future[None], int]] = {}
        self._subscribers: set[Subscriber] = set()
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stopping = False
        self.connected = False
        self.last_message = 0.0
        self.reconnects = 0
        self.resyncs = 0

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        await self._connect()
        self.snapshots.start()
        self._reader = asyncio.create_task(self._run(), name="hub-reader")

    async def stop(self) -> None:
        self._stopping = True
        for sub in list(self._subscribers):
            sub.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.snapshots.stop()
        await self._close_pubsub()
        await self._redis.aclose()

    @property
    def healthy(self) -> bool:
        alive = self._reader is not None and not self._reader.done()
        return alive and self.connected

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @property
    def watched_count(self) -> int:
        return len(self._watchers)

    # -- subscribers ---------------------------------------------------------------------

    def subscriber(self) -> Subscriber:
        """A new subscriber; TooManyStreams over MAX_STREAMS."""
        if len(self._subscribers) >= self.max_streams:
            raise TooManyStreams(self.max_streams)
        sub = Subscriber()
        self._subscribers.add(sub)
        return sub

    async def release(self, sub: Subscriber) -> None:
        """Unwatch everything `sub` watches and forget it."""
        for task_id in list(sub.seen):
            await self.unwatch(sub, task_id)
        sub.close()
        self._subscribers.discard(sub)

    async def watch(self, sub: Subscriber, task_id: str, after_seq: int = 0) -> Event:
        """Subscribe `sub` to a task and offer it the current state; returns that snapshot.

        TaskNotFound (and no subscription left behind) when the task is unknown or expired.
        """
        if task_id not in self._watchers:
            # Nothing follows a terminal state, so a task that already ended needs no
            # subscription at all: one read answers a late subscriber (or a 404).
            snapshot = await self._snapshot(task_id)
            if snapshot.terminal:
                sub.seen[task_id] = after_seq
                sub.offer(snapshot)
                return snapshot
        sub.seen[task_id] = after_seq
        watchers = self._watchers.setdefault(task_id, set())
        watchers.add(sub)
        try:
            await self._subscribe(task_id, first=len(watchers) == 1)
            snapshot = await self._snapshot(task_id)
        except BaseException:
            await self.unwatch(sub, task_id)
            raise
        sub.offer(snapshot)
        return snapshot

    async def _snapshot(self, task_id: str) -> Event:
        raw = await self.snapshots.read(task_id)
        if raw is None:
            raise TaskNotFound(task_id)
        return decode_event(raw)

    async def unwatch(self, sub: Subscriber, task_id: str) -> None:
        sub.forget(task_id)
        watchers = self._watchers.get(task_id)
        if watchers is None:
            return
        watchers.discard(sub)
        if not watchers:
            del self._watchers[task_id]
            await self._unsubscribe(task_id)

    # -- pub/sub ---------------------------------------------------------------------------

    async def _subscribe(self, task_id: str, *, first: bool) -> None:
        """Return once Redis confirmed the task's channel is subscribed."""
        channel = self.keys.channel(task_id)
        if first:
            future, sent = self._confirming.get(channel, (None, 0))
            if future is None:
                future = asyncio.get_running_loop().create_future()
            self._confirming[channel] = (future, sent + 1)
            if self._pubsub is not None and self.connected:
                await self._pubsub.subscribe(channel)
            # While disconnected, _connect() subscribes every watched channel and confirms.
        entry = self._confirming.get(channel)
        if entry is not None:
            await asyncio.shield(entry[0])

    async def _unsubscribe(self, task_id: str) -> None:
        if self._pubsub is None or not self.connected:
            return
        try:
            await self._pubsub.unsubscribe(self.keys.channel(task_id))
        except (RedisError, OSError) as e:
            log.warning("unsubscribe of %s failed (%s); the reconnect will drop it", task_id, e)

    def _confirmed(self, channel: str) -> None:
        entry = self._confirming.get(channel)
        if entry is None:
            return
        future, sent = entry
        if sent > 1:
            self._confirming[channel] = (future, sent - 1)
            return
        del self._confirming[channel]
        if not future.done():
            future.set_result(None)

    def _dispatch(self, payload: bytes) -> None:
        try:
            event = decode_event(payload)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("ignoring a malformed event: %r", payload[:120])
            return
        for sub in self._watchers.get(event.task_id, ()):
            sub.offer(event)

    def _handle(self, message: dict[str, object]) -> None:
        self.last_message = time.monotonic()
        kind, channel = message["type"], message.get("channel")
        if kind == "message" and isinstance(message["data"], bytes):
            self._dispatch(message["data"])
        elif kind == "subscribe" and isinstance(channel, bytes):
            self._confirmed(channel.decode())

    # -- the reader ------------------------------------------------------------------------

    async def _run(self) -> None:
        next_resync = time.monotonic() + self.resync_seconds
        while not self._stopping:
            try:
                await self._read_once()
                if time.monotonic() >= next_resync:
                    next_resync = time.monotonic() + self.resync_seconds
                    await self.resync()
            except (TimeoutError, RedisError, OSError) as e:
                await self._recover(e)

    async def _read_once(self) -> None:
        pubsub = self._pubsub
        if pubsub is None:
            raise ConnectionError("no pub/sub connection")
        message = await pubsub.get_message(timeout=READ_TIMEOUT)
        if message is not None:
            self._handle(message)
            return
        silence = time.monotonic() - self.last_message
        if silence > 2 * PING_AFTER:
            raise ConnectionError(f"pub/sub connection silent for {silence:.1f} s, even to PING")
        if silence > PING_AFTER:
            await pubsub.ping()

    async def _recover(self, error: BaseException) -> None:
        self.connected = False
        log.warning("hub pub/sub connection lost (%s); reconnecting", error)
        delay = 0.05
        while not self._stopping:
            await asyncio.sleep(delay * (0.5 + random.random()))
            try:
                await self._connect()
                self.reconnects += 1
                await self.resync()
                log.info("hub reconnected; %d tasks resubscribed and resynced", len(self._watchers))
                return
            except (TimeoutError, RedisError, OSError) as e:
                log.warning("hub reconnect failed: %s", e)
                delay = min(delay * 2, 2.0)

    async def _connect(self) -> None:
        await self._close_pubsub()
        pubsub = self._redis.pubsub()
        subscribed: set[str] = set()
        wanted = {self.keys.hub_channel}
        # Watchers may arrive while we wait for confirmations: loop until none is missing.
        while missing := wanted - subscribed:
            await pubsub.subscribe(*missing)
            await self._await_confirmations(pubsub, missing)
            subscribed |= missing
            wanted = {self.keys.hub_channel, *(self.keys.channel(t) for t in self._watchers)}
        self._pubsub = pubsub
        self.connected = True
        self.last_message = time.monotonic()
        for channel in list(self._confirming):
            self._confirming[channel] = (self._confirming[channel][0], 1)
            self._confirmed(channel)

    async def _await_confirmations(self, pubsub: PubSub, channels: set[str]) -> None:
        pending = set(channels)
        deadline = time.monotonic() + 5
        while pending:
            if time.monotonic() > deadline:
                raise ConnectionError(f"{len(pending)} SUBSCRIBE confirmations missing after 5 s")
            message = await pubsub.get_message(timeout=READ_TIMEOUT)
            if message is not None and message["type"] == "subscribe":
                pending.discard(message["channel"].decode())
            elif message is not None:
                self._handle(message)

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            except (RedisError, OSError):
                pass

    async def resync(self) -> None:
        """Re-read every watched task (pipelined) and offer what moved."""
        task_ids = list(self._watchers)
        self.resyncs += 1
        for chunk in _chunks(task_ids, 500):
            for raw in await self.store.states(chunk):
                if raw is not None:
                    self._dispatch(raw)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
