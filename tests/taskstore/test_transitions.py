from __future__ import annotations

import orjson
import pytest
from redis.asyncio import Redis

from taskstore import Move, TaskNotFound, TaskStatus, TaskStore, TransitionRejected, decode_state
from taskstore.deadletters import DeadLetters
from taskstore.topology import Topology
from tests.helpers import both_topologies

pytestmark = both_topologies


async def _running(store: TaskStore, token: str = "t1") -> str:
    sub = await store.submit("hello", {})
    await store.move(Move(sub.task_id, TaskStatus.RUNNING, new_token=token, new_attempt=True))
    return sub.task_id


async def test_submit_creates_a_pending_task_at_seq_1(store: TaskStore) -> None:
    sub = await store.submit("hello", {"a": 1})

    state = decode_state(await store.state(sub.task_id))

    assert not sub.cached
    assert state["status"] == "PENDING" and state["seq"] == 1 and state["attempts"] == 0


async def test_each_move_increments_seq_and_publishes_the_full_state(
    store: TaskStore, redis: Redis, topology: Topology
) -> None:
    task_id = await _running(store)
    pubsub = redis.pubsub()
    if topology.cluster:  # sharded pub/sub: SPUBLISH reaches SSUBSCRIBE only
        await pubsub.ssubscribe(store.keys.channel(task_id))
        await pubsub.get_sharded_message(timeout=1)
    else:
        await pubsub.subscribe(store.keys.channel(task_id))
        await pubsub.get_message(timeout=1)

    moved = await store.move(Move(task_id, TaskStatus.DONE, {"result": '{"x": 1}'}, token="t1"))
    if topology.cluster:
        message = await pubsub.get_sharded_message(timeout=2)
    else:
        message = await pubsub.get_message(timeout=2)
    await pubsub.aclose()

    assert message is not None
    event = orjson.loads(message["data"])
    assert event == decode_state(moved.state)
    assert event["seq"] == 3 and event["status"] == "DONE" and event["result"] == {"x": 1}


async def test_redelivery_after_done_changes_nothing(store: TaskStore, redis: Redis) -> None:
    task_id = await _running(store)
    await store.move(Move(task_id, TaskStatus.DONE, {"result": "1"}, token="t1"))
    before = await store.state(task_id)

    with pytest.raises(TransitionRejected) as exc:
        await store.move(Move(task_id, TaskStatus.RUNNING, new_token="t2", new_attempt=True))

    assert exc.value.current == "DONE"
    assert await store.state(task_id) == before


async def test_a_stale_attempt_token_is_rejected(store: TaskStore) -> None:
    task_id = await _running(store, token="old")
    await store.move(Move(task_id, TaskStatus.RUNNING, new_token="new", new_attempt=True))

    with pytest.raises(TransitionRejected) as exc:
        await store.move(Move(task_id, TaskStatus.DONE, {"result": "1"}, token="old"))

    assert exc.value.reason == "stale attempt"
    assert decode_state(await store.state(task_id))["status"] == "RUNNING"


async def test_terminal_states_allow_no_move(store: TaskStore) -> None:
    task_id = await _running(store)
    await store.cancel(task_id)

    with pytest.raises(TransitionRejected):
        await store.cancel(task_id)


async def test_moving_an_unknown_task_raises_not_found(store: TaskStore) -> None:
    with pytest.raises(TaskNotFound):
        await store.move(Move("nope", TaskStatus.RUNNING))


async def test_move_many_returns_rejections_in_place(store: TaskStore) -> None:
    task_id = await _running(store)

    results = await store.move_many(
        [Move(task_id, TaskStatus.RUNNING, {"progress": "0.5"}, token="t1"), Move("gone", TaskStatus.DONE)]
    )

    assert decode_state(results[0].state)["progress"] == 0.5  # type: ignore[union-attr]
    assert isinstance(results[1], TransitionRejected) and results[1].current is None


async def test_scripts_are_reloaded_after_redis_forgets_them(store: TaskStore, redis: Redis) -> None:
    task_id = await _running(store)
    await redis.script_flush()

    results = await store.move_many([Move(task_id, TaskStatus.DONE, {"result": "2"}, token="t1")])

    assert decode_state(results[0].state)["result"] == 2  # type: ignore[union-attr]


async def test_cache_hit_creates_a_done_task_and_refreshes_the_ttl(store: TaskStore, redis: Redis) -> None:
    first = await store.submit("same", {"k": [1, 2]})
    signature_key = next(iter(await redis.keys(f"{store.keys.prefix}:cache:*")), None)
    assert signature_key is None
    await redis.set(store.keys.cache(_signature("same", {"k": [1, 2]})), '{"r": 1}', ex=5)

    hit = await store.submit("same", {"k": [1, 2]})

    assert first.task_id != hit.task_id
    assert hit.cached and orjson.loads(hit.result_json or b"") == {"r": 1}
    assert decode_state(await store.state(hit.task_id))["status"] == "DONE"
    assert await redis.ttl(store.keys.cache(_signature("same", {"k": [1, 2]}))) > 5


def _signature(prompt: str, params: dict[str, object]) -> str:
    from taskstore import codec

    return codec.signature(codec.encode_request(prompt, params))


async def test_a_move_to_failed_with_dead_letter_writes_both_in_one_step(store: TaskStore) -> None:
    sub = await store.submit("cannot start", {})
    letters = DeadLetters(store.redis, store.keys)

    moved = await store.move(Move(sub.task_id, TaskStatus.FAILED, {"error": "gave up"}, dead_letter=True))
    found = await letters.list()

    assert decode_state(moved.state)["status"] == "FAILED"
    assert [(d.task_id, d.error, d.attempts) for d in found] == [(sub.task_id, "gave up", 0)]
    assert orjson.loads(found[0].request) == {"kind": "default", "prompt": "cannot start", "params": {}}


async def test_a_rejected_move_writes_no_dead_letter(store: TaskStore) -> None:
    sub = await store.submit("done already", {})
    await store.move(Move(sub.task_id, TaskStatus.CANCELLED))

    with pytest.raises(TransitionRejected):
        await store.move(Move(sub.task_id, TaskStatus.FAILED, {"error": "x"}, dead_letter=True))

    assert await DeadLetters(store.redis, store.keys).list() == []
