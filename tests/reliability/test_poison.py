from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from taskstore.deadletters import DeadLetters
from taskstore.store import TaskStore
from tests.helpers import RedisProcess
from tests.reliability.procs import WorkerProcess
from tests.worker.waits import all_final, dead_letters

POISON_ENV = {
    "handler": "tests.reliability.poison_handler:handle",
    "visibility_timeout": "0.5",
    "max_concurrency": "4",
    "max_retries": "3",
}


async def _supervise(start: Callable[[], WorkerProcess], deaths: list[int]) -> None:
    """Restart the worker whenever it dies, as systemd or Kubernetes would."""
    while True:
        deaths.append(await start().exited())


@pytest.mark.timeout(120)
async def test_a_task_that_kills_its_worker_ends_failed_and_dead_lettered_while_others_finish(
    own_redis: RedisProcess, own_store: TaskStore, workers: Callable[..., WorkerProcess]
) -> None:
    poison = (await own_store.submit("poison pill", {})).task_id
    others = [(await own_store.submit(f"ordinary {i}", {})).task_id for i in range(10)]
    deaths: list[int] = []
    supervisor = asyncio.create_task(_supervise(lambda: workers(own_redis.url, **POISON_ENV), deaths))

    states = await all_final(own_store, [poison, *others], timeout=60)
    supervisor.cancel()

    assert states[0]["status"] == "FAILED" and states[0]["attempts"] == 4
    assert {s["status"] for s in states[1:]} == {"DONE"}
    assert deaths == [1, 1, 1, 1]
    letters = await dead_letters(DeadLetters(own_store.redis, own_store.keys))
    assert [(d.task_id, d.attempts) for d in letters] == [(poison, 4)]
