from __future__ import annotations

from collections import Counter

import pytest
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from taskstore import Keys, new_task_id
from taskstore.codec import encode_request, signature
from taskstore.shards import shard_tags


def _slot(key: str) -> int:
    return int(key_slot(key.encode()))


def _new_id(keys: Keys, prompt: str) -> tuple[str, str]:
    sig = signature(encode_request(prompt, {}))
    return keys.new_task_id(sig, new_task_id()), sig


def test_every_key_of_a_task_shares_one_slot() -> None:
    keys = Keys(prefix="p", queue="q", shard_count=16)
    task_id, sig = _new_id(keys, "hello")
    shard = keys.shard_of_task(task_id)

    names = [keys.task(task_id), keys.channel(task_id), keys.cache(sig)]
    names += [shard.stream, shard.delayed, shard.dead_letter]

    assert len({_slot(n) for n in names}) == 1
    assert shard == keys.shard_of_signature(sig)
    assert len(set(names)) == len(names)


def test_identical_requests_go_to_the_same_shard() -> None:
    keys = Keys(shard_count=16)

    first, _ = _new_id(keys, "same")
    second, _ = _new_id(keys, "same")

    assert first != second
    assert keys.shard_of_task(first) == keys.shard_of_task(second)


def test_channel_name_gives_back_the_task_id() -> None:
    keys = Keys(shard_count=4)
    task_id, _ = _new_id(keys, "x")

    assert keys.task_id_from_channel(keys.channel(task_id)) == task_id
    assert keys.task_id_from_channel(keys.channel("0123abcd")) == "0123abcd"


def test_an_id_from_before_shards_keeps_its_old_key_names() -> None:
    keys = Keys(prefix="taskcast", queue="task_stream", shard_count=16)
    old_id = "b172adc02de45be299e7e6cef0a212bc"

    assert keys.task(old_id) == f"taskcast:task:{{{old_id}}}"
    assert keys.channel(old_id) == f"taskcast:events:{{{old_id}}}"
    assert keys.shard_of_task(old_id) == keys.legacy
    assert (keys.legacy.stream, keys.legacy.delayed, keys.legacy.dead_letter) == (
        "task_stream",
        "task_stream:delayed",
        "task_stream:dead",
    )
    assert keys.all_shards[-1] == keys.legacy


@pytest.mark.parametrize("count", [1, 3, 16, 64])
def test_shard_tags_spread_evenly_over_the_slot_space(count: int) -> None:
    tags = shard_tags(count)

    parts = [_slot(f"{{{t}}}") * count // REDIS_CLUSTER_HASH_SLOTS for t in tags]

    assert parts == list(range(count))


def test_with_default_shards_no_primary_of_three_holds_over_one_and_a_half_its_share() -> None:
    keys = Keys(shard_count=16)
    bounds = [i * REDIS_CLUSTER_HASH_SLOTS // 3 for i in range(1, 3)]  # redis-cli's equal ranges

    tasks_per_primary = Counter(
        sum(_slot(keys.task(_new_id(keys, f"p{i}")[0])) >= b for b in bounds) for i in range(6000)
    )

    assert max(tasks_per_primary.values()) <= 1.5 * 6000 / 3
    assert len(tasks_per_primary) == 3


def test_queue_shard_count_is_checked() -> None:
    with pytest.raises(ValueError, match="QUEUE_SHARDS"):
        Keys(shard_count=0)


def test_each_kind_has_its_own_queue_shards_and_the_default_kind_keeps_queue_key() -> None:
    keys = Keys(prefix="p", queue="q", shard_count=2)
    render = keys.of_kind("render")
    sig = signature(encode_request("draw", {}, "render"))

    assert keys.of_kind("default") is keys and render.of_kind("render") is render
    assert [s.stream for s in keys.shards] == [f"q:{{{t}}}" for t in shard_tags(2)]
    assert [s.stream for s in render.shards] == [f"q:kind:render:{{{t}}}" for t in shard_tags(2)]
    assert render.shards[0].delayed == render.shards[0].stream + ":delayed"
    assert render.shards[0].dead_letter == render.shards[0].stream + ":dead"
    assert keys.all_shards[-1] == keys.legacy and render.all_shards == render.shards
    assert render.task("t") == keys.task("t") and render.cache(sig) == keys.cache(sig)
    shard = render.shard_of_signature(sig)
    same_slot = [shard.stream, shard.delayed, keys.cache(sig), keys.inflight(sig)]
    assert len({_slot(k) for k in same_slot}) == 1


def test_a_tasks_delayed_set_is_in_its_slot_and_an_id_without_a_shard_has_none_on_a_cluster() -> None:
    cluster = Keys(prefix="p", queue="q", shard_count=16, legacy_queue=False)
    single = Keys(prefix="p", queue="q", shard_count=1)
    task_id, _ = _new_id(cluster, "hello")
    old_id = new_task_id()  # 32 hex digits, from before shards

    assert cluster.delayed_of_task(task_id) == cluster.shard_of_task(task_id).delayed
    assert _slot(cluster.delayed_of_task(task_id) or "") == _slot(cluster.task(task_id))
    assert cluster.delayed_of_task(old_id) is None
    assert single.delayed_of_task(old_id) == single.legacy.delayed
