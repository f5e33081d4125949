"""The shards' tallies (index.lua) stay equal to the indexes they count, through every move.

GET /stats and the dashboard read status counts from one tallies hash per shard instead of a
ZCARD per index; these tests run tasks of two kinds through every status, trims of expired
entries, requeues and resubmits, and compare the tallies with the ZCARDs.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
from redis.asyncio import Redis, RedisCluster

from server.ops.opsfeed import ASIDE_EVERY, HEAD, ROWS_PER_TICK, OpsFeed
from taskstore import Move, TaskStatus, TaskStore
from taskstore.codec import encode_request, signature
from taskstore.deadletters import DeadLetters
from taskstore.index import TaskIndex, task_kind
from taskstore.keys import Keys
from taskstore.opsstats import read_stats
from taskstore.resubmit import requeue_dead_letter, resubmit_failed
from taskstore.tallies import OpsReader
from taskstore.topology import route
from taskstore.workers import Heartbeats
from tests.helpers import both_topologies

pytestmark = both_topologies

KINDS = ["default", "images"]


async def _zcards(redis: Redis, keys: Keys) -> dict[str, dict[str, int]]:
    """Ground truth: each kind's index sizes, added up over the shards."""
    sizes = {kind: {status.value: 0 for status in TaskStatus} for kind in KINDS}
    for kind in KINDS:
        for status in TaskStatus:
            for tag in keys.index_tags:
                sizes[kind][status.value] += int(await redis.zcard(keys.index(kind, status, tag)))
    return sizes


async def _tallied(redis: Redis, keys: Keys) -> dict[str, dict[str, int]]:
    stats = await read_stats(OpsReader(redis, keys, KINDS, result_ttl=3600))
    return {kind: {str(s): n for s, n in k.tasks.items()} for kind, k in stats.kinds.items()}


async def _run(store: TaskStore, task_id: str, to: TaskStatus, kind: str = "default", **fields: str) -> None:
    """Start the task and move it on, as a worker of its kind does."""
    token = f"t-{to}"
    await store.move(Move(task_id, TaskStatus.RUNNING, new_token=token, new_attempt=True, kind=kind))
    if to != TaskStatus.RUNNING:
        dead = to == TaskStatus.FAILED
        await store.move(Move(task_id, to, dict(fields), token=token, dead_letter=dead, kind=kind))


async def _every_move(store: TaskStore) -> list[str]:
    """Tasks of both kinds through every status and move; the ids of the FAILED ones."""
    failed = []
    for kind in KINDS:
        ids = [(await store.submit(f"{kind} {i}", {}, kind=kind)).task_id for i in range(8)]
        await _run(store, ids[0], TaskStatus.DONE, kind, result='"ok"')
        await _run(store, ids[1], TaskStatus.FAILED, kind, error="boom")
        await _run(store, ids[2], TaskStatus.CANCELLED, kind)
        await _run(store, ids[3], TaskStatus.RUNNING, kind)
        running = "t-RUNNING"
        await store.move(Move(ids[3], TaskStatus.RUNNING, {"progress": "0.5"}, running, kind=kind))  # stays
        await store.move(Move(ids[3], TaskStatus.PENDING, {"error": "retry"}, running, kind=kind))  # a retry
        await store.cancel(ids[4])  # straight from PENDING
        await store.move(Move(ids[5], TaskStatus.FAILED, {"error": "never started"}, kind=kind))
        await store.submit(f"{kind} later", {}, kind=kind, delay=60)  # scheduled
        failed += [ids[1], ids[5]]
    return failed


async def test_the_tallies_equal_the_indexes_through_every_move(
    redis: Redis, store: TaskStore, client: httpx.AsyncClient
) -> None:
    failed = await _every_move(store)
    cached = encode_request("default 0", {}, "default")  # DONE: its result is cached now
    async with redis.pipeline(transaction=False) as pipe:
        store.queue_cache_write(pipe, signature(cached), '"ok"')
        await pipe.execute()
    assert (await store.submit("default 0", {})).cached
    await resubmit_failed(store, failed[0])
    images = DeadLetters(redis, store.keys.of_kind("images"))
    await requeue_dead_letter(images, store, failed[2])
    await _run(store, (await store.submit("one more", {})).task_id, TaskStatus.DONE)

    truth = await _zcards(redis, store.keys)

    assert await _tallied(redis, store.keys) == truth
    assert (
        truth["default"]["PENDING"] > 0 and truth["images"]["FAILED"] == 2 and truth["default"]["DONE"] == 3
    )
    stats: dict[str, Any] = (await client.get("/stats")).json()["kinds"]["default"]
    assert stats["tasks"] == truth["default"] and stats["running"] == truth["default"]["RUNNING"]


async def test_trimming_expired_entries_is_counted(redis: Redis, store: TaskStore, keys: Keys) -> None:
    old = [(await store.submit(f"soon expired {i}", {})).task_id for i in range(12)]
    await _run(store, old[0], TaskStatus.DONE, result="1")
    await asyncio.sleep(1.1)
    # A write whose task id ends in "00" trims its index of entries older than the expiry:
    # here 1 s, so every entry above goes (one such write per shard the tasks are in).
    short = TaskStore(redis, keys, result_ttl=1)
    for tag in {keys.index_tag(task_id) for task_id in old}:
        await _trim(short, keys, tag)

    truth = await _zcards(redis, keys)

    assert truth["default"]["PENDING"] == len({keys.index_tag(t) for t in old})  # only the trimming ones
    assert await _tallied(redis, keys) == truth


async def test_tallies_missing_or_wrong_are_reconciled_once_per_reader(
    redis: Redis, store: TaskStore
) -> None:
    await _every_move(store)
    truth = await _zcards(redis, store.keys)
    for tag in store.keys.index_tags:  # as a deployment from before the tallies, or a lost hash
        await redis.delete(store.keys.tallies(tag))
    await redis.hincrby(store.keys.tallies(store.keys.index_tags[0]), "images RUNNING>", 5)

    assert await _tallied(redis, store.keys) == truth
    before = {tag: await redis.hgetall(store.keys.tallies(tag)) for tag in store.keys.index_tags}
    assert await _tallied(redis, store.keys) == truth  # a second reader writes nothing
    assert {tag: await redis.hgetall(store.keys.tallies(tag)) for tag in store.keys.index_tags} == before


def _prompt_in(keys: Keys, tag: str) -> tuple[str, dict[str, Any]]:
    """A request whose task lands in the shard with `tag`."""
    for i in range(100_000):
        prompt = f"trim {tag} {i}"
        if keys.shard_of_signature(signature(encode_request(prompt, {}, "default"))).tag == tag:
            return prompt, {}
    raise AssertionError(f"no prompt for shard {tag!r}")


async def _trim(store: TaskStore, keys: Keys, tag: str) -> None:
    prompt, params = _prompt_in(keys, tag)
    sig = signature(encode_request(prompt, params, task_kind()))
    task_id = keys.new_task_id(sig, f"{int(time.time() * 1e6):x}00")
    await store.submit(prompt, params, task_id=task_id)


class Tail:
    """A live list tailing `keys`, as a dashboard session is to the feed."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def on_tick(self) -> None:
        pass

    def tailed(self) -> list[str]:
        return self.keys

    def unread(self) -> list[str]:
        return []


def _feed(redis: Redis, keys: Keys, calls: list[int], tail: list[str]) -> OpsFeed:
    """The dashboards' feed over `redis`, a list tailing `tail`; its script calls in `calls`."""
    reader = OpsReader(redis, keys, KINDS, result_ttl=3600, on_commands=lambda sent, _: calls.append(sent))
    index = TaskIndex(redis, keys, result_ttl=3600)
    feed = OpsFeed(reader, index, Heartbeats(redis, keys), gone_after=10)
    feed._watchers.add(Tail(tail))  # joined without its loop: the test ticks it
    return feed


async def test_the_feed_reads_once_per_node_a_second_whatever_moved(
    redis: Redis, store: TaskStore, keys: Keys
) -> None:
    first = (await store.submit("first", {})).task_id
    calls: list[int] = []
    pending = [keys.index("default", TaskStatus.PENDING, tag) for tag in keys.index_tags]
    feed = _feed(redis, keys, calls, pending)
    nodes = len({str(route(redis, keys.tallies(tag)).get("target_nodes")) for tag in keys.index_tags})
    for _ in range(ASIDE_EVERY):  # start-up reads; every shard's delayed and dead letters read once
        await feed._tick(time.time())
    calls.clear()

    await feed._tick(time.time())  # idle
    idle = len(calls)
    second = (await store.submit("second", {})).task_id
    await _run(store, first, TaskStatus.DONE, result="1")
    calls.clear()
    await feed._tick(time.time())  # the counts show second's index grew: its head is read too
    frame = orjson.loads(feed.frame)

    assert idle == nodes and nodes == (3 if isinstance(redis, RedisCluster) else 1)
    assert len(calls) == nodes
    head = feed.heads[keys.index("default", TaskStatus.PENDING, keys.index_tag(second))]
    assert second in [task_id for _, task_id in head]
    truth = await _zcards(redis, keys)
    assert {kind: k["tasks"] for kind, k in frame["kinds"].items()} == truth
    # Waiting: the second only. The first's stream entry is still there (no worker read it: the
    # moves were made here), but that task is DONE.
    assert frame["kinds"]["default"]["queued"] == 1
    assert sum(point[1] for point in frame["series"]) == 1  # the DONE, in its second


async def test_the_feed_reads_tasks_states_in_one_call_per_node(
    redis: Redis, store: TaskStore, keys: Keys
) -> None:
    ids = [(await store.submit(f"row {i}", {})).task_id for i in range(6)]
    await _run(store, ids[0], TaskStatus.DONE, result="1")
    gone = ids[1][:-4] + "0000"  # an id of the same shard that names no task
    calls: list[int] = []
    feed = _feed(redis, keys, calls, [])
    await feed.reader.reconcile()  # once per process, before the first read
    calls.clear()

    states = await feed.read_states([*ids, gone])

    nodes = {str(route(redis, keys.tallies(keys.index_tag(t))).get("target_nodes")) for t in ids}
    assert len(calls) == len(nodes)
    assert states[gone] is None
    for task_id in ids:
        assert orjson.loads(states[task_id] or b"") == orjson.loads(await store.state(task_id))
    assert orjson.loads(states[ids[0]] or b"")["status"] == "DONE"


async def test_under_load_the_lists_take_new_rows_at_the_budgets_rate(
    redis: Redis, store: TaskStore, keys: Keys
) -> None:
    """However many tasks arrive, and on however many nodes, the heads a tick offers hold at
    most the rows' budget: HEAD at once, then ROWS_PER_TICK a tick."""
    pending = [keys.index("default", TaskStatus.PENDING, tag) for tag in keys.index_tags]
    feed = _feed(redis, keys, [], pending)
    for _ in range(ASIDE_EVERY):  # start-up reads
        await feed._tick(time.time())
    offered: set[tuple[float, str]] = set()
    ticks = 8
    for tick in range(ticks):
        for i in range(20):
            await store.submit(f"load {tick} {i}", {})
        await feed._tick(time.time())
        offered |= {p for key in pending for p in feed.heads.get(key, [])}

    assert HEAD <= len(offered) <= HEAD + ticks * ROWS_PER_TICK
