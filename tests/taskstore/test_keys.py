from __future__ import annotations

from taskstore import Keys


def test_task_hash_and_channel_share_a_cluster_hash_tag() -> None:
    keys = Keys(prefix="p")

    task, channel = keys.task("abc"), keys.channel("abc")

    assert "{abc}" in task and "{abc}" in channel
    assert task != channel


def test_channel_name_gives_back_the_task_id() -> None:
    keys = Keys()

    assert keys.task_id_from_channel(keys.channel("t-1")) == "t-1"


def test_queue_keys_follow_the_queue_name() -> None:
    keys = Keys(queue="jobs")

    assert keys.stream == "jobs"
    assert keys.dead_letter.startswith("jobs")
    assert keys.delayed.startswith("jobs")
