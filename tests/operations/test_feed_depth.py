"""The dashboard feed's delayed and dead letter counts: read rarely, yet never long wrong.

No queue stream is read: queued is PENDING minus delayed, so the delayed count has to follow a
scheduled task's promotion, and the dead letters a failure, within a tick or two.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from redis.asyncio import Redis

from server.ops.opsfeed import ASIDE_EVERY, OpsFeed
from taskstore import Move, TaskStatus, TaskStore
from taskstore.index import TaskIndex
from taskstore.keys import Keys
from taskstore.stream import TaskQueue
from taskstore.tallies import OpsReader
from taskstore.workers import Heartbeats
from tests.helpers import both_topologies

pytestmark = both_topologies


def _feed(redis: Redis, keys: Keys) -> OpsFeed:
    reader = OpsReader(redis, keys, ["default"], result_ttl=3600)
    return OpsFeed(reader, TaskIndex(redis, keys, result_ttl=3600), Heartbeats(redis, keys), gone_after=10)


async def _counts(feed: OpsFeed) -> dict[str, Any]:
    await feed._tick(time.time())
    kind: dict[str, Any] = orjson.loads(feed.frame)["kinds"]["default"]
    return {name: kind[name] for name in ("queued", "delayed", "dead_letters")}


async def test_a_scheduled_task_is_delayed_then_queued_once_due(redis: Redis, store: TaskStore) -> None:
    feed = _feed(redis, store.keys)
    await _counts(feed)  # the first tick reads every shard's counts
    await store.submit("later", {}, delay=0.5)

    # Tallied as any submit: delayed from the shard's next staggered read on.
    seen = [await _counts(feed) for _ in range(ASIDE_EVERY)]
    time.sleep(0.6)
    assert await TaskQueue(redis, store.keys).promote_due(time.time()) == 1
    promoted = await _counts(feed)  # due: read again whatever the turn

    assert seen[-1] == {"queued": 0, "delayed": 1, "dead_letters": 0}
    assert promoted == {"queued": 1, "delayed": 0, "dead_letters": 0}


async def test_a_failure_shows_its_dead_letter_on_the_next_tick(redis: Redis, store: TaskStore) -> None:
    feed = _feed(redis, store.keys)
    task_id = (await store.submit("doomed", {})).task_id
    for _ in range(ASIDE_EVERY):
        await _counts(feed)

    await store.move(Move(task_id, TaskStatus.RUNNING, new_token="t", new_attempt=True))
    await store.move(Move(task_id, TaskStatus.FAILED, {"error": "boom"}, token="t", dead_letter=True))
    moved = await _counts(feed)  # the tallies show a failure
    after = await _counts(feed)  # so the dead letters are read, not waiting for their turn

    assert moved["queued"] == 0
    assert after == {"queued": 0, "delayed": 0, "dead_letters": 1}
