"""The hub's pub/sub on a Redis Cluster: one connection per primary, SSUBSCRIBE, one reader each.

    connect(wanted) ─▶ refresh the slot map ─▶ per primary: a connection (retries off), SUBSCRIBE
                       the hub channel, SSUBSCRIBE its channels one slot at a time, all confirmed
                       ─▶ a reader task per primary: get_message(timeout) on its own socket
    subscribe(chs)  ─▶ SSUBSCRIBE on the primary that owns their slot, a slot a command (confirmed
                       via the reader)
    read()          ─▶ waits for a broken link; raises so the hub reconnects and resyncs, when:
                       a connection fails or stays silent (failover: its primary died),
                       Redis unsubscribes a channel we did not give up (its slot moved away),
                       or a SSUBSCRIBE is redirected (our slot map is stale)

It has the same face as `PubSubLink`, so the hub does not care which one it holds. Recovery is
whole: every primary's subscriptions are rebuilt on the current slot map, then the hub re-reads
every watched task, so a subscriber misses no final state across a migration or failover.
redis-py's ClusterPubSub reconciles shard channels by itself, but reconnects silently; here a
break must surface, because the messages sent meanwhile are lost and only a resync recovers them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import MovedError, RedisClusterException, RedisError

from server.push.pubsub_link import CONFIRM_TIMEOUT, PING_AFTER, READ_TIMEOUT, Message
from taskstore.topology import REDIS_FAILURE

_CONFIRMS = frozenset({"subscribe", "ssubscribe"})


class NodeLink:
    """One primary's pub/sub connection and the reader that hands its messages on."""

    def __init__(self, name: str, redis: Redis, on_message: Callable[[NodeLink, Message], None]) -> None:
        self.name = name
        self.redis = redis
        self.pubsub: PubSub = redis.pubsub()
        self.on_message = on_message
        self.last_message = time.monotonic()
        self.reader: asyncio.Task[None] | None = None

    async def confirm(self, channels: set[str]) -> None:
        """Read until every channel in `channels` is confirmed; other messages go on as usual."""
        pending, deadline = set(channels), time.monotonic() + CONFIRM_TIMEOUT
        while pending:
            if time.monotonic() > deadline:
                raise ConnectionError(f"{self.name}: {len(pending)} subscriptions unconfirmed")
            message = await self.pubsub.get_message(timeout=READ_TIMEOUT)
            if message is None:
                continue
            if message["type"] in _CONFIRMS:
                pending.discard(message["channel"].decode())
            else:
                self.on_message(self, message)

    async def read_forever(self) -> None:
        while True:
            message = await self.pubsub.get_message(timeout=READ_TIMEOUT)
            if message is not None:
                self.last_message = time.monotonic()
                self.on_message(self, message)
                continue
            silence = time.monotonic() - self.last_message
            if silence > 2 * PING_AFTER:
                raise ConnectionError(f"{self.name}: pub/sub silent for {silence:.1f} s, even to PING")
            if silence > PING_AFTER:
                await self.pubsub.ping()

    async def aclose(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        try:
            await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        except (RedisError, OSError):
            pass
        await self.redis.aclose()


class ShardedLink:
    def __init__(
        self, cluster: RedisCluster, redis_url: str, broadcast: str, on_message: Callable[[Message], None]
    ) -> None:
        self._cluster = cluster
        self._options = parse_url(redis_url)
        self._broadcast = broadcast  # a plain channel every node link subscribes, so each exists
        self._on_message = on_message
        self._nodes: dict[str, NodeLink] = {}
        self._owner: dict[str, str] = {}  # shard channel -> name of the node it is subscribed on
        self._leaving: Counter[str] = Counter()  # SUNSUBSCRIBEs sent and not yet confirmed
        self._broken: asyncio.Future[str] | None = None
        self.last_message = 0.0

    @property
    def connected(self) -> bool:
        return bool(self._nodes) and self._broken is not None and not self._broken.done()

    @property
    def connections(self) -> int:
        """Pub/sub connections held: one per primary."""
        return len(self._nodes)

    async def connect(self, wanted: Callable[[], set[str]]) -> None:
        """Fresh connections to every primary, each subscribed to its channels, all confirmed."""
        await self.close()
        self._broken = asyncio.get_running_loop().create_future()
        try:
            await self._cluster.nodes_manager.initialize()
            for node in self._cluster.get_primaries():
                self._nodes[node.name] = self._node_link(node.name, node.host, int(node.port))
            subscribed: set[str] = set()
            while missing := wanted() - subscribed:  # watchers may arrive meanwhile
                await self._subscribe_all(missing)
                subscribed |= missing
        except RedisClusterException as e:  # slots not covered yet (a failover under way)
            await self.close()
            raise ConnectionError(f"cluster not ready: {e}") from e
        except BaseException:
            await self.close()
            raise
        for link in self._nodes.values():
            link.reader = asyncio.create_task(self._run_reader(link), name=f"hub-reader-{link.name}")
        self.last_message = time.monotonic()

    async def subscribe(self, *channels: str) -> None:
        """SSUBSCRIBE on each channel's primary, one slot per command (or CROSSSLOT); the
        confirmations arrive through that reader."""
        groups: dict[int, list[str]] = defaultdict(list)
        for channel in channels:
            groups[key_slot(channel.encode())].append(channel)
        for group in groups.values():
            link = self._owner_link(group[0])
            await link.pubsub.ssubscribe(*group)
            for channel in group:
                self._owner[channel] = link.name

    async def unsubscribe(self, *channels: str) -> None:
        """SUNSUBSCRIBE on each channel's primary, one slot per command (or CROSSSLOT)."""
        groups: dict[tuple[str, int], list[str]] = defaultdict(list)
        for channel in channels:
            name = self._owner.pop(channel, None)
            if name in self._nodes:
                self._leaving[channel] += 1
                groups[(name, key_slot(channel.encode()))].append(channel)
        for (name, _), group in groups.items():
            await self._nodes[name].pubsub.sunsubscribe(*group)

    async def read(self) -> None:
        """Wait up to READ_TIMEOUT; ConnectionError (with the reason) once a link broke."""
        broken = self._broken
        if broken is None or not self._nodes:
            raise ConnectionError("no pub/sub connection")
        done, _ = await asyncio.wait([broken], timeout=READ_TIMEOUT)
        if done:
            raise ConnectionError(broken.result())

    async def close(self) -> None:
        nodes, self._nodes = self._nodes, {}
        self._owner.clear()
        self._leaving.clear()
        if self._broken is not None and not self._broken.done():
            self._broken.set_result("closed")
        await asyncio.gather(*(link.aclose() for link in nodes.values()), return_exceptions=True)

    async def aclose(self) -> None:
        await self.close()

    # -- internals ---------------------------------------------------------------------------

    def _node_link(self, name: str, host: str, port: int) -> NodeLink:
        options: dict[str, Any] = {**self._options, "host": host, "port": port}
        redis = Redis(**options, retry=Retry(NoBackoff(), 0), client_name="taskcast-api-hub")
        return NodeLink(name, redis, self._handle)

    def _owner_link(self, channel: str) -> NodeLink:
        node = self._cluster.get_node_from_key(channel)
        link = self._nodes.get(node.name) if node is not None else None
        if link is None:
            self._break(f"the slot of {channel} is served by {node and node.name}, new to this hub")
            raise ConnectionError("cluster topology changed; reconnecting")
        return link

    async def _subscribe_all(self, channels: set[str]) -> None:
        by_node: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
        for channel in channels - {self._broadcast}:
            by_node[self._owner_link(channel).name][key_slot(channel.encode())].append(channel)
        for name, link in self._nodes.items():
            await link.pubsub.subscribe(self._broadcast)
            for slot_channels in by_node[name].values():  # one slot per SSUBSCRIBE, or CROSSSLOT
                await link.pubsub.ssubscribe(*slot_channels)
                self._owner.update(dict.fromkeys(slot_channels, name))
            await link.confirm({self._broadcast, *(c for cs in by_node[name].values() for c in cs)})

    async def _run_reader(self, link: NodeLink) -> None:
        try:
            await link.read_forever()
        except MovedError as e:
            self._break(f"slot {e.slot_id} is now served by {e.host}:{e.port}")
        except REDIS_FAILURE as e:
            self._break(f"{link.name}: {type(e).__name__}: {e}")

    def _handle(self, link: NodeLink, message: Message) -> None:
        self.last_message = time.monotonic()
        if message["type"] == "sunsubscribe":
            channel = _text(message["channel"])
            if self._leaving[channel] > 0:
                self._leaving[channel] -= 1
                if not self._leaving[channel]:
                    del self._leaving[channel]
            else:
                self._break(f"{link.name} dropped {channel}: its slot moved to another primary")
            return
        self._on_message(message)

    def _break(self, reason: str) -> None:
        if self._broken is not None and not self._broken.done():
            self._broken.set_result(reason)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
