from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from redis.asyncio import Redis

from taskstore import TaskQueue
from tests.conftest import LiveServer
from tests.helpers import RedisProcess, wait_for


async def test_ready_once_the_workers_group_exists(live_server: LiveServer, queue: TaskQueue) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        before = await client.get("/readyz")
        await queue.ensure_group()
        after = await client.get("/readyz")

    assert before.status_code == 503
    assert before.json()["checks"]["consumer_group"] == "missing"
    assert after.status_code == 200
    assert after.json() == {
        "status": "ready",
        "checks": {"pubsub": "ok", "redis": "ok", "consumer_group": "ok"},
    }


@pytest.mark.timeout(60)
async def test_not_ready_while_redis_is_down_but_alive_and_ready_again_after(
    own_redis: RedisProcess, start_server: Callable[..., LiveServer]
) -> None:
    server = start_server(redis_url=own_redis.url)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        redis = Redis.from_url(own_redis.url)
        await TaskQueue(redis).ensure_group()
        await redis.aclose()
        own_redis.stop()

        down = await client.get("/readyz")
        alive = await client.get("/healthz")
        own_redis.start()
        ready = await wait_for(lambda: _ready(client), timeout=20, what="/readyz to answer 200 again")

    assert down.status_code == 503 and down.json()["checks"]["redis"].startswith("unreachable")
    assert alive.status_code == 200
    assert ready


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200
