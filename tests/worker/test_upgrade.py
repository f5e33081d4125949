"""Upgrading a running single-node deployment: the layout before shards stays readable.

Tasks of that layout have ids without a shard (32 hex) and keys `taskcast:task:{<id>}`; the queue
was one stream `task_stream` with `task_stream:delayed` and `task_stream:dead`. The old submit
script is the current one called with the old key names (plus the list view's indexes and
tallies, which it writes since), so that is how these tests write them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis

from taskstore import Move, TaskQueue, TaskStatus, TaskStore, decode_state, new_task_id
from taskstore.codec import encode_request, signature
from taskstore.deadletters import DeadLetter, DeadLetters
from tests.worker.waits import all_final
from worker.runner import Runner


async def _old_submit(store: TaskStore, prompt: str) -> str:
    """What submit did before shards: an id without a shard, the one stream, the old cache key."""
    task_id, request = new_task_id(), encode_request(prompt, {"duration": 0.05})
    sig = signature(request)
    legacy = store.keys.legacy
    keys = [f"{store.keys.prefix}:cache:{sig}", store.keys.task(task_id), legacy.stream]
    keys += [f"{store.keys.prefix}:inflight:{sig}", legacy.delayed]  # the script's later keys
    tag = store.keys.index_tag(task_id)
    keys += [store.keys.index("default", status, tag) for status in ("PENDING", "DONE")]  # list view
    keys.append(store.keys.tallies(tag))  # and the operations view's counts
    args: list[str | int] = [task_id, request.decode(), sig, 3600, 600, 0, "default", "0", ""]
    assert (await store.scripts.submit(store.redis, keys, args))[0] == b"queued"
    return task_id


async def test_queued_running_and_retrying_tasks_and_dead_letters_of_the_old_layout_carry_on(
    store: TaskStore, queue: TaskQueue, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    await queue.ensure_group()
    running = await _old_submit(store, "was running")
    (entry,) = (await queue.read("dead-worker", [(store.keys.legacy, 1)]))[0]
    await store.move(Move(entry.task_id, TaskStatus.RUNNING, new_token="old", new_attempt=True))
    retrying = await _old_submit(store, "retry due")
    (retry_entry,) = (await queue.read("dead-worker", [(store.keys.legacy, 1)]))[0]
    await queue.ack([retry_entry])
    await redis.zadd(store.keys.legacy.delayed, {retrying: time.time()})
    letter = DeadLetter(new_task_id(), "failed before the upgrade", 4, '{"prompt":"x"}', time.time())
    await redis.xadd(store.keys.legacy.dead_letter, letter.fields())  # type: ignore[arg-type]
    queued = await _old_submit(store, "queued")

    start_worker(visibility_timeout=0.3)
    states = await all_final(store, [queued, running, retrying])
    letters = await DeadLetters(redis, store.keys).list()

    assert entry.task_id == running and store.keys.task(queued) == f"taskcast:task:{{{queued}}}"
    assert [s["status"] for s in states] == ["DONE"] * 3
    assert [s["attempts"] for s in states] == [1, 2, 1]  # the running one was reclaimed
    assert [(d.task_id, d.ref) for d in letters] == [(letter.task_id, letters[0].entry_id)]
    assert decode_state(await store.state(queued))["result"]["echo"] == "queued"
