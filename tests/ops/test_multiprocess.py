"""Two API processes and two workers on one Redis, as real processes.

Tasks are submitted to either API process; subscribers on both see the same events; Redis
connections grow with processes, not with subscribers; /metrics adds up every process's numbers
when they share PROMETHEUS_MULTIPROC_DIR.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from redis.asyncio import Redis

from taskstore import Keys
from taskstore.codec import encode_request, signature
from tests.factories import submit
from tests.helpers import free_port, wait_for
from tests.ops.stack import ApiProcess, read_events, sample, scrape
from tests.reliability.procs import WorkerProcess

StartApis = Callable[..., Awaitable[list[ApiProcess]]]
StartWorkers = Callable[..., list[WorkerProcess]]
LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=None)


class Counter:
    def __init__(self) -> None:
        self.value = 0

    def __call__(self) -> None:
        self.value += 1


def clients(apis: list[ApiProcess]) -> list[httpx.AsyncClient]:
    return [httpx.AsyncClient(base_url=api.url, timeout=30, limits=LIMITS) for api in apis]


async def api_connections(redis: Redis) -> dict[str, int]:
    counts: dict[str, int] = {}
    for client in await redis.client_list():
        counts[client["name"]] = counts.get(client["name"], 0) + 1
    return counts


async def test_subscribers_on_both_processes_see_every_transition(
    redis: Redis, start_apis: StartApis, start_workers: StartWorkers
) -> None:
    apis = await start_apis(2)
    a, b = clients(apis)
    task_ids = [await submit((a, b)[i % 2], f"task {i}", duration=0.3) for i in range(8)]
    snapshots = Counter()
    streams = [
        asyncio.create_task(read_events(client, task_id, snapshots))
        for task_id in task_ids
        for client in (a, b)
    ]
    await wait_for(lambda: _at_least(snapshots, len(streams)), what="every stream's snapshot")

    start_workers(2)
    results = await asyncio.wait_for(asyncio.gather(*streams), timeout=30)

    for task_id, on_a, on_b in zip(task_ids, results[0::2], results[1::2], strict=True):
        assert [e["seq"] for e in on_a] == [1, 2, 3]
        assert [e["status"] for e in on_a] == ["PENDING", "RUNNING", "DONE"]
        assert on_a == on_b
        assert on_a[-1]["task_id"] == task_id
        assert on_a[-1]["result"]["echo"] == f"task {task_ids.index(task_id)}"
    await asyncio.gather(a.aclose(), b.aclose())


async def test_redis_connections_grow_with_processes_not_subscribers(
    redis: Redis, start_apis: StartApis, tmp_path: Path
) -> None:
    apis = await start_apis(2, prometheus_multiproc_dir=str(tmp_path / "metrics"))
    a, b = clients(apis)
    task_ids = [await submit((a, b)[i % 2], f"held {i}") for i in range(20)]
    opened = Counter()

    streams = [
        asyncio.create_task(read_events(client, task_id, opened))
        for task_id in task_ids
        for client in (a, b, a, b, a)
    ]
    await wait_for(lambda: _at_least(opened, 100), what="100 open streams")
    connections = await api_connections(redis)
    metrics = await scrape(apis[0].url)

    assert connections.get("taskcast-api-hub") == 2  # one pub/sub connection per process
    assert connections.get("taskcast-api", 0) <= 2 * 10
    assert sample(metrics, "taskcast_streams_open", transport="sse") == 100
    # Each process watches all 20 tasks; the other process's hub numbers arrive with its next sync.
    await wait_for(lambda: _scraped(apis[0], "taskcast_hub_watched_tasks", 40), what="40 watched tasks")
    for stream in streams:
        stream.cancel()
    await asyncio.gather(*streams, return_exceptions=True)
    await asyncio.gather(a.aclose(), b.aclose())


async def test_metrics_add_up_across_processes_sharing_a_directory(
    redis: Redis, start_apis: StartApis, start_workers: StartWorkers, tmp_path: Path
) -> None:
    apis = await start_apis(2, prometheus_multiproc_dir=str(tmp_path / "metrics"))
    ports = [free_port(), free_port()]
    start_workers(1, metrics_port=str(ports[0]))
    start_workers(1, metrics_port=str(ports[1]))
    a, b = clients(apis)

    task_ids = [await submit(a, f"on a {i}") for i in range(3)] + [
        await submit(b, f"on b {i}") for i in range(2)
    ]
    finals = await asyncio.gather(*(read_events(b, task_id) for task_id in task_ids))
    await wait_for(lambda: redis.exists(cache_key("on a 0")), what="the cache entry of a DONE task")
    cached = await a.post("/tasks", json={"prompt": "on a 0", "params": {}})

    assert [events[-1]["status"] for events in finals] == ["DONE"] * 5
    assert cached.status_code == 200
    for api in apis:
        metrics = await scrape(api.url)
        assert sample(metrics, "taskcast_tasks_submitted_total", cached="false") == 5
        assert sample(metrics, "taskcast_tasks_submitted_total", cached="true") == 1
    await wait_for(lambda: _worker_total(ports, "taskcast_worker_transitions_total", 5, status="DONE"))
    await wait_for(lambda: _worker_total(ports, "taskcast_worker_task_seconds_count", 5, outcome="ok"))
    await asyncio.gather(a.aclose(), b.aclose())


def cache_key(prompt: str) -> str:
    return Keys().cache(signature(encode_request(prompt, {})))


async def _scraped(api: ApiProcess, name: str, value: float) -> bool:
    return sample(await scrape(api.url), name) == value


async def _worker_total(ports: list[int], name: str, value: float, **labels: str) -> bool:
    texts = [await _worker_scrape(port) for port in ports]
    return sum(sample(text, name, **labels) for text in texts) == value


async def _worker_scrape(port: int) -> str:
    async def text() -> str | None:
        try:
            return await scrape(f"http://127.0.0.1:{port}")
        except httpx.TransportError:
            return None

    result: str = await wait_for(text, what=f"the worker's metrics on port {port}")
    return result


async def _at_least(counter: Counter, n: int) -> bool:
    return counter.value >= n
