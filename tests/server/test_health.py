from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from taskstore import TaskStore
from tests.conftest import LiveServer
from tests.helpers import RedisProcess, both_topologies, wait_for
from tests.worker.waits import final
from worker.runner import Runner


@both_topologies
async def test_an_api_with_no_worker_ever_run_is_ready_and_its_task_runs_on_the_first_worker(
    live_server: LiveServer, start_worker: Callable[..., Runner], store: TaskStore
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        ready = await client.get("/readyz")
        submitted = await client.post("/tasks", json={"prompt": "before any worker"})
        queued = (await client.get("/readyz")).json()["queue"]
        start_worker()
        state = await final(store, submitted.json()["task_id"])
        later = await wait_for(lambda: _workers(client, 1), what="/readyz to count the worker")

    assert ready.status_code == 200
    body = ready.json()
    assert (body["status"], body["checks"], body["workers"]) == ("ready", {"pubsub": "ok", "redis": "ok"}, 0)
    assert body["queue"]["length"] == 0 and len(body["queue"]["shards"]) == len(store.keys.all_shards)
    assert submitted.status_code == 202
    shard = store.keys.shard_of_task(submitted.json()["task_id"]).tag or "legacy"
    assert queued["length"] == 1 == queued["shards"][shard]
    assert state["status"] == "DONE"
    assert later["status"] == "ready"


async def _workers(client: httpx.AsyncClient, count: int) -> dict[str, object] | None:
    body: dict[str, object] = (await client.get("/readyz")).json()
    return body if body["workers"] == count else None


@pytest.mark.timeout(60)
async def test_not_ready_while_redis_is_down_but_alive_and_ready_again_after(
    own_redis: RedisProcess, start_server: Callable[..., LiveServer]
) -> None:
    server = start_server(redis_url=own_redis.url)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        own_redis.stop()

        down = await client.get("/readyz")
        alive = await client.get("/healthz")
        own_redis.start()
        ready = await wait_for(lambda: _ready(client), timeout=20, what="/readyz to answer 200 again")

    assert down.status_code == 503 and down.json()["checks"]["redis"].startswith("unreachable")
    assert down.json()["workers"] is None
    assert alive.status_code == 200
    assert ready


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200
