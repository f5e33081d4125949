"""Progress merging: a handler reporting in a tight loop gets PROGRESS_RATE writes a second."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from taskstore import TaskStore, decode_state
from tests.worker.waits import events_until_end
from worker.runner import Runner

FLOOD = "tools.flood_handler:flood"
RATE = 10


async def _run(
    store: TaskStore,
    redis: Redis,
    start_worker: Callable[..., Runner],
    params: dict[str, Any],
    **settings: Any,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every event of one flood task up to its end, and its stored state once the worker stopped."""
    sub = await store.submit("flood", params)
    subscribed = asyncio.Event()
    listening = asyncio.create_task(events_until_end(redis, store.keys.channel(sub.task_id), subscribed))
    await subscribed.wait()
    start_worker(handler=FLOOD, progress_rate=RATE, **settings)
    events = await listening
    return events, decode_state(await store.state(sub.task_id))


def _last_reported(text: str) -> float:
    return float(text.rpartition("last=")[2])


@pytest.mark.timeout(30)
async def test_a_progress_flood_is_merged_to_the_rate_and_the_last_value_goes_out(
    store: TaskStore, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    events, _ = await _run(store, redis, start_worker, {"seconds": 3, "linger": 0.5})

    result = events[-1]["result"]
    progress = [e for e in events if e["status"] == "RUNNING" and e["progress"] is not None]
    assert events[-1]["status"] == "DONE"
    assert result["calls"] > 10 * RATE * 3  # the handler really flooded
    assert events[-1]["seq"] - events[0]["seq"] <= RATE * 3 + 5
    assert progress[-1]["progress"] == result["last"]  # trailing edge: the last report went out
    assert [e["seq"] for e in events] == sorted({e["seq"] for e in events})


async def test_a_terminal_state_right_after_a_flood_carries_the_last_progress_and_nothing_follows(
    store: TaskStore, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    events, stored = await _run(store, redis, start_worker, {"seconds": 0.5, "fail": True})

    failed = events[-1]
    assert failed["status"] == "FAILED" and failed["attempts"] == 1
    assert failed["progress"] == _last_reported(failed["error"])
    assert stored["seq"] == failed["seq"] and stored["progress"] == failed["progress"]


async def test_no_progress_of_an_attempt_lands_after_its_retry(
    store: TaskStore, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    params = {"seconds": 0.5, "fail_first": True}
    fast = {"retry_backoff": 0.01, "retry_backoff_max": 0.01}

    events, stored = await _run(store, redis, start_worker, params, **fast)

    retry = next(i for i, e in enumerate(events) if e["status"] == "PENDING")
    assert events[retry]["progress"] is None and "last=" in events[retry]["error"]
    assert [e["status"] for e in events[retry:]] == ["PENDING", "RUNNING", "DONE"]
    assert all(e["attempts"] == 1 for e in events[:retry])
    assert stored["status"] == "DONE" and stored["seq"] == events[-1]["seq"]
