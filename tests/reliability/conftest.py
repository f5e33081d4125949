"""Fixtures of the fault tests: worker subprocesses, and a store on a private Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from redis.asyncio import Redis

from taskstore import Keys, TaskStore
from tests.helpers import RedisProcess
from tests.reliability.procs import WorkerProcess


@pytest.fixture
def workers(request: pytest.FixtureRequest) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: start `python -m worker` on a Redis URL with env overrides; all stopped at teardown."""
    started: list[WorkerProcess] = []

    def start(redis_url: str, **env: str) -> WorkerProcess:
        worker = WorkerProcess(redis_url, f"{request.node.name}-{len(started)}", **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
async def own_store(own_redis: RedisProcess) -> AsyncIterator[TaskStore]:
    """A TaskStore on the test's private Redis (the one the test may kill or restart)."""
    client = Redis.from_url(own_redis.url)
    yield TaskStore(client, Keys())
    await client.aclose()
