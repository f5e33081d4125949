from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from taskstore import TaskStore
from tests.conftest import LiveServer
from tests.worker.waits import all_final
from worker.runner import Runner


async def test_a_flood_beyond_the_queue_limit_gets_503s_and_every_accepted_task_completes(
    store: TaskStore, start_server: Callable[..., LiveServer], start_worker: Callable[..., Runner]
) -> None:
    server = start_server(max_queue_length=50)

    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        bodies = [{"prompt": f"flood {i}", "params": {}} for i in range(120)]
        answers = await asyncio.gather(*(client.post("/tasks", json=body) for body in bodies))
        accepted = [a.json()["task_id"] for a in answers if a.status_code == 202]
        refused = [a for a in answers if a.status_code == 503]
        start_worker(max_concurrency=20)
        states = await all_final(store, accepted)
        after = await client.post("/tasks", json={"prompt": "after the flood", "params": {}})

    assert len(accepted) == 50 and len(refused) == 70
    assert all(int(a.headers["Retry-After"]) >= 1 for a in refused)
    assert {s["status"] for s in states} == {"DONE"}
    assert after.status_code == 202
