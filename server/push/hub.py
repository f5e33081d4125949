"""The fan-out hub: one Redis pub/sub connection per API process, shared by every subscriber.

    watch(sub, id) ─▶ refcount+1 ─▶ first? SUBSCRIBE and await Redis's confirmation
                  ─▶ snapshot of the hash (batched with other watchers') ─▶ sub.offer(snapshot)
    reader task   ─▶ get_message(timeout) ─▶ decode seq/status once ─▶ held, newest per task
                  ─▶ once the reader waits again, a chunk of deliveries per turn (held.py):
                     offer() each held event to each watcher (an idle stream's send is called
                     there, server/push/subscriber.py) ─▶ `delivered(event, n)` once for the n
                     sent so
                     (on a cluster: one connection and reader per primary, SSUBSCRIBE; sharded_link.py)
                  └▶ error or silence ─▶ reconnect (backoff + jitter) ─▶ resubscribe ─▶ resync
    resync        ─▶ pipelined snapshots of every watched task ─▶ offer() (subscribers drop
                     what they already have), also every HUB_RESYNC_SECONDS

Redis pub/sub is at-most-once; the resyncs are what make delivery of the final state certain.
The reader never awaits a client: `offer()` replaces a slot and wakes the stream, or calls a
send that completes without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable

import orjson
from redis.asyncio.cluster import RedisCluster

from server.push.confirmations import Confirmations
from server.push.departures import Departures
from server.push.ends import Ends
from server.push.held import Held
from server.push.pubsub_link import Message, PubSubLink
from server.push.sharded_link import ShardedLink
from server.push.snapshots import Snapshots
from server.push.subscriber import Event, Subscriber, TooManyStreams, decode_event
from server.push.watchdog import Watchdog
from taskstore import TaskNotFound, TaskStore
from taskstore.topology import REDIS_FAILURE

READ_FAILURE: tuple[type[Exception], ...] = (TimeoutError, *REDIS_FAILURE)

log = logging.getLogger(__name__)

__all__ = ["Hub", "TooManyStreams"]


class Hub:
    def __init__(
        self,
        redis_url: str,
        store: TaskStore,
        *,
        resync_seconds: float,
        max_streams: int,
        send_timeout: float = 10.0,
        ping_seconds: float = 15.0,
    ) -> None:
        self.store = store
        self.keys = store.keys
        self.snapshots = Snapshots(store)
        self.resync_seconds = resync_seconds
        self.max_streams = max_streams
        self._link = _link(redis_url, store, self._handle)
        self._confirmations = Confirmations()
        self._departures = Departures(self._unsubscribe)
        self._link_writes = asyncio.Lock()  # keeps an UNSUBSCRIBE from overtaking a later SUBSCRIBE
        self._watchers: dict[str, set[Subscriber]] = {}
        self._ends = Ends()
        self._held = Held(self._offer, self._ends.busy)  # read, not offered yet (held.py)
        self._subscribers: set[Subscriber] = set()
        self._reader: asyncio.Task[None] | None = None
        self.watchdog = Watchdog(
            lambda: self._subscribers, send_timeout=send_timeout, ping_seconds=ping_seconds
        )
        # Told once per event of how many subscribers it went to straight from here (metrics).
        self.delivered: Callable[[Event, int], None] = _no_count
        self._stopping = False
        self.reconnects = 0
        self.resyncs = 0

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        await self._connect()
        self._reader = asyncio.create_task(self._run(), name="hub-reader")
        self.watchdog.start()

    async def stop(self) -> None:
        self._stopping = True
        await self.watchdog.stop()
        await self._departures.aclose()
        for sub in list(self._subscribers):
            sub.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._link.aclose()

    @property
    def connected(self) -> bool:
        return self._link.connected

    @property
    def healthy(self) -> bool:
        alive = self._reader is not None and not self._reader.done()
        return alive and self._link.connected

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @property
    def superseded(self) -> int:
        """Events that never went out: a newer state of their task was read before their turn."""
        return self._held.superseded

    @property
    def watched_count(self) -> int:
        return len(self._watchers)

    # -- subscribers ---------------------------------------------------------------------

    def subscriber(self, transport: str = "stream", task_id: str | None = None) -> Subscriber:
        """A new subscriber; TooManyStreams over MAX_STREAMS.

        It counts toward MAX_STREAMS until `release()`, which its stream calls only once the
        connection is done with (closed, or aborted by the watchdog).
        """
        if len(self._subscribers) >= self.max_streams:
            raise TooManyStreams(self.max_streams)
        sub = Subscriber(transport, task_id, self._ends)
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
        await self.follow(sub, [task_id], after_seq)
        try:
            snapshot = await self._snapshot(task_id)
        except BaseException:
            await self.unwatch(sub, task_id)
            raise
        sub.offer(snapshot)
        return snapshot

    async def follow(self, sub: Subscriber, task_ids: list[str], after_seq: int = 0) -> None:
        """Subscribe `sub` to the tasks, without reading their states: the caller reads them
        once this returns, so no event falls between that read and the first one pushed (the
        dashboard's new rows, server/ops/dashboard_session.py). New channels go out in one
        SUBSCRIBE (on a cluster, one SSUBSCRIBE per slot)."""
        first = []
        for task_id in task_ids:
            sub.seen[task_id] = after_seq
            watchers = self._watchers.setdefault(task_id, set())
            watchers.add(sub)
            if len(watchers) == 1:
                first.append(task_id)
        try:
            await self._subscribe(first, task_ids)
        except BaseException:
            for task_id in task_ids:
                await self.unwatch(sub, task_id)
            raise

    async def unwatch(self, sub: Subscriber, task_id: str) -> None:
        sub.forget(task_id)
        watchers = self._watchers.get(task_id)
        if watchers is None:
            return
        watchers.discard(sub)
        if not watchers:
            del self._watchers[task_id]
            self._departures.leave(task_id)

    async def _snapshot(self, task_id: str) -> Event:
        raw = await self.snapshots.read(task_id)
        if raw is None:
            raise TaskNotFound(task_id)
        return decode_event(raw)

    # -- pub/sub ---------------------------------------------------------------------------

    async def _subscribe(self, first: list[str], task_ids: list[str]) -> None:
        """Subscribe the channels of `first` (the tasks just watched for the first time) that
        are not still subscribed; return once Redis confirmed every channel of `task_ids`."""
        channels = [self.keys.channel(t) for t in first if not self._departures.stay(t)]
        if channels:
            for channel in channels:
                self._confirmations.expect(channel)
            try:
                async with self._link_writes:
                    await self._link.subscribe(*channels)
            except REDIS_FAILURE as e:
                # The reader sees the broken link too; its reconnect subscribes every
                # watched channel and releases this wait.
                log.warning("subscribe to %d tasks failed (%s); waiting for the reconnect", len(channels), e)
        for task_id in task_ids:
            await self._confirmations.wait(self.keys.channel(task_id))

    async def _unsubscribe(self, task_ids: set[str]) -> None:
        """One UNSUBSCRIBE for the tasks that are still unwatched (see server/push/departures.py)."""
        async with self._link_writes:
            channels = [self.keys.channel(t) for t in task_ids if t not in self._watchers]
            if not channels:
                return
            try:
                await self._link.unsubscribe(*channels)
            except REDIS_FAILURE as e:
                log.warning(
                    "unsubscribe of %d tasks failed (%s); the reconnect will drop them", len(channels), e
                )

    def _handle(self, message: Message) -> None:
        kind, channel, data = message["type"], message.get("channel"), message.get("data")
        if kind in _EVENTS and isinstance(data, bytes):
            event = _decoded(data)
            if event is not None:
                self._held.hold(event)
        elif kind in _CONFIRMS and isinstance(channel, bytes):
            self._confirmations.confirmed(channel.decode())

    def _dispatch(self, payload: bytes) -> None:
        event = _decoded(payload)
        if event is not None:
            self._offer(event)

    def _offer(self, event: Event) -> int:
        """Offer `event` to its task's watchers; how many there are."""
        watchers = self._watchers.get(event.task_id, ())
        sent = 0
        for sub in watchers:
            sent += sub.offer(event)
        if sent:
            self.delivered(event, sent)
        return len(watchers)

    # -- the reader ------------------------------------------------------------------------

    async def _run(self) -> None:
        next_resync = time.monotonic() + self.resync_seconds
        while not self._stopping:
            try:
                await self._link.read()
                if time.monotonic() >= next_resync:
                    next_resync = time.monotonic() + self.resync_seconds
                    await self.resync()
            except READ_FAILURE as e:
                await self._recover(e)

    async def _recover(self, error: BaseException) -> None:
        await self._link.close()
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
            except READ_FAILURE as e:
                log.warning("hub reconnect failed: %s", e)
                delay = min(delay * 2, 2.0)

    async def _connect(self) -> None:
        await self._link.connect(self._wanted_channels)
        self._departures.forget_all()
        self._confirmations.confirm_all()

    def _wanted_channels(self) -> set[str]:
        return {self.keys.hub_channel, *(self.keys.channel(t) for t in self._watchers)}

    async def resync(self) -> None:
        """Re-read every watched task (pipelined) and offer what moved."""
        task_ids = list(self._watchers)
        self.resyncs += 1
        for chunk in _chunks(task_ids, 500):
            for raw in await self.store.states(chunk):
                if raw is not None:
                    self._dispatch(raw)


_EVENTS = frozenset({"message", "smessage"})  # smessage: sharded pub/sub, on a cluster
_CONFIRMS = frozenset({"subscribe", "ssubscribe"})


def _link(
    redis_url: str, store: TaskStore, on_message: Callable[[Message], None]
) -> PubSubLink | ShardedLink:
    """One connection on a single node; one per primary (SSUBSCRIBE) on a cluster."""
    if isinstance(store.redis, RedisCluster):
        return ShardedLink(store.redis, redis_url, store.keys.hub_channel, on_message)
    return PubSubLink(redis_url, on_message)


def _decoded(payload: bytes) -> Event | None:
    try:
        return decode_event(payload)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("ignoring a malformed event: %r", payload[:120])
        return None


def _no_count(event: Event, n: int) -> None:
    pass


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
