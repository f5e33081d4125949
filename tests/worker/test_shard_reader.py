from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from taskstore import Keys, TaskQueue
from worker.shard_reader import ShardReader

SHARDS = Keys(shard_count=16)


async def _fill(redis: Redis, hot: int, cold: int) -> None:
    """`hot` entries in shard 0, `cold` in each other shard."""
    for n in range(hot):
        await redis.xadd(SHARDS.shards[0].stream, {"task_id": f"hot-{n}"})
    for shard in SHARDS.shards[1:]:
        for n in range(cold):
            await redis.xadd(shard.stream, {"task_id": f"cold-{shard.tag}-{n}"})


async def test_a_hot_shard_does_not_starve_the_others(redis: Redis) -> None:
    queue = TaskQueue(redis, SHARDS)
    await queue.ensure_group()
    await _fill(redis, hot=200, cold=1)
    reader = ShardReader(queue, "w", block_ms=100)

    order = [e.task_id for _ in range(12) for e in await reader.sweep(5)]

    assert len(order) == 60
    assert sum(t.startswith("cold") for t in order) == 15  # every other shard's entry came
    assert order.index(max((t for t in order if t.startswith("cold")), key=order.index)) < 40


async def test_a_sweep_never_takes_more_than_the_free_slots(redis: Redis) -> None:
    queue = TaskQueue(redis, SHARDS)
    await queue.ensure_group()
    await _fill(redis, hot=3, cold=3)
    reader = ShardReader(queue, "w", block_ms=100)

    sizes = [len(await reader.sweep(free)) for free in (1, 7, 20, 100)]

    assert sizes == [1, 7, 20, 3 + 15 * 3 - 28]


async def test_an_idle_reader_wakes_for_a_new_entry_long_before_its_block_time(redis: Redis) -> None:
    queue = TaskQueue(redis, SHARDS)
    await queue.ensure_group()
    reader = ShardReader(queue, "w", block_ms=60_000)
    stop = asyncio.Event()
    reading = asyncio.create_task(reader.read(5, stop))
    await asyncio.sleep(0.2)  # let it go idle; what is asserted is that it wakes, not how fast
    await redis.xadd(SHARDS.shards[7].stream, {"task_id": "late"})

    entries = await asyncio.wait_for(reading, 10)
    await reader.close()

    assert [e.task_id for e in entries] == ["late"]
