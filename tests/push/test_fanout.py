"""Fan-out keeps its shape at scale: 2,000 subscribers, two Redis connections, every stream ends.

The subscribers are the benchmarks' lean raw-socket clients (tools/lean_clients.py), half SSE
and half WebSocket, so one test process can hold them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import LiveServer
from tests.factories import submit
from tools.lean_clients import TERMINAL, LeanSubscriber, open_subscriber
from worker.runner import Runner

SUBSCRIBERS = 2000
TASKS = 20


async def api_connections(redis: Redis) -> int:
    return sum(1 for c in await redis.client_list() if c.get("name", "").startswith("taskcast-api"))


@pytest.mark.timeout(120)
async def test_2000_subscribers_share_two_redis_connections_and_each_stream_ends_terminal(
    live_server: LiveServer, client: httpx.AsyncClient, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    ids = [await submit(client, f"fanout {i}", duration=0.5, steps=2) for i in range(TASKS)]
    last: dict[int, dict[str, Any]] = {}
    opened = asyncio.Event()
    first_events = 0

    def on_event(n: int) -> Callable[[float, dict[str, Any], bool], None]:
        def record(_: float, event: dict[str, Any], first: bool) -> None:
            nonlocal first_events
            last[n] = event
            first_events += first
            if first_events == SUBSCRIBERS:
                opened.set()

        return record

    subscribers: list[LeanSubscriber] = []
    for start in range(0, SUBSCRIBERS, 200):  # a batch at a time: the listen backlog is finite
        subscribers += await asyncio.gather(
            *(
                open_subscriber("127.0.0.1", live_server.port, ids[n % TASKS], n % 2 == 0, on_event(n))
                for n in range(start, start + 200)
            )
        )
    await asyncio.wait_for(opened.wait(), 60)
    while_open = await api_connections(redis)

    start_worker(max_concurrency=TASKS)
    await asyncio.wait_for(asyncio.gather(*(s.done for s in subscribers)), 60)
    await asyncio.wait_for(asyncio.gather(*(s.closed for s in subscribers)), 30)  # and every stream ended
    after = await api_connections(redis)

    assert while_open == 2 and after == 2
    assert len(last) == SUBSCRIBERS
    assert all(
        event["status"] in TERMINAL and event["task_id"] == ids[n % TASKS] for n, event in last.items()
    )
