"""GET /stats matches what was run: ends per kind over the last minute, queues and dead letters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from taskstore import TaskStore
from tests.helpers import both_topologies, wait_for
from worker.runner import Runner

pytestmark = both_topologies


async def _stats(client: httpx.AsyncClient) -> dict[str, Any]:
    answer: dict[str, Any] = (await client.get("/stats")).raise_for_status().json()
    return answer


async def test_stats_count_what_the_worker_ran(
    client: httpx.AsyncClient, store: TaskStore, start_worker: Callable[..., Runner]
) -> None:
    start_worker(max_retries=0)
    for i in range(5):
        await store.submit(f"ok {i}", {"duration": 0})
    for i in range(2):
        await store.submit(f"bad {i}", {"duration": 0, "fail": True})
    waiting = await store.submit("never run", {})
    await store.cancel(waiting.task_id)

    async def settled() -> dict[str, Any] | None:
        stats = (await _stats(client))["kinds"]["default"]
        return stats if stats["done_last_minute"] + stats["failed_last_minute"] == 7 else None

    stats = await wait_for(settled, what="7 tasks to end")

    assert stats["done_last_minute"] == 5 and stats["failed_last_minute"] == 2
    assert stats["done_per_second"] == 5 / 60 and stats["failed_per_second"] == 2 / 60
    assert stats["tasks"] == {"PENDING": 0, "RUNNING": 0, "DONE": 5, "FAILED": 2, "CANCELLED": 1}
    assert stats["dead_letters"] == 2
    assert stats["running"] == 0 and stats["delayed"] == 0


async def test_stats_show_queued_and_delayed_work(client: httpx.AsyncClient, store: TaskStore) -> None:
    for i in range(3):
        await store.submit(f"waiting {i}", {})

    stats = (await _stats(client))["kinds"]["default"]

    assert stats["queued"] == 3 and stats["tasks"]["PENDING"] == 3
    assert stats["done_last_minute"] == 0 and stats["dead_letters"] == 0


async def test_seconds_list_the_ends_second_by_second(
    client: httpx.AsyncClient, store: TaskStore, start_worker: Callable[..., Runner]
) -> None:
    start_worker(max_retries=0)
    for i in range(3):
        await store.submit(f"ok {i}", {"duration": 0})

    async def ended() -> int:
        return sum(done for _, done, _ in (await _stats(client))["seconds"])

    await wait_for(lambda: _is(ended, 3), what="3 DONE in the per-second series")
    seconds = (await _stats(client))["seconds"]

    assert len(seconds) == 120
    assert [s for s, _, _ in seconds] == list(range(seconds[0][0], seconds[0][0] + 120))


async def _is(count: Callable[[], Any], wanted: int) -> bool:
    return await count() == wanted
