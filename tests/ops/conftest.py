"""Fixtures of the operations tests: API and worker processes, stopped at teardown."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.ops.stack import ApiProcess
from tests.reliability.procs import WorkerProcess


@pytest.fixture
def start_apis(redis_server: str, tmp_path: Path) -> Iterator[Callable[..., Awaitable[list[ApiProcess]]]]:
    """Factory: `count` API processes on the session Redis with env overrides, once all answer."""
    started: list[ApiProcess] = []

    async def start(count: int = 1, **env: str) -> list[ApiProcess]:
        apis = [ApiProcess(redis_server, tmp_path, **env) for _ in range(count)]
        started.extend(apis)
        await asyncio.gather(*(api.wait_ready() for api in apis))
        return apis

    yield start
    for api in started:
        api.stop()


@pytest.fixture
def start_workers(
    redis_server: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., list[WorkerProcess]]]:
    """Factory: `count` `python -m worker` processes on the session Redis with env overrides."""
    started: list[WorkerProcess] = []

    def start(count: int = 1, **env: str) -> list[WorkerProcess]:
        workers = [
            WorkerProcess(redis_server, f"{request.node.name}-{len(started) + i}", **env)
            for i in range(count)
        ]
        started.extend(workers)
        return workers

    yield start
    for worker in started:
        worker.stop()
