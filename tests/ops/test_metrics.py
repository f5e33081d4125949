"""GET /metrics of one API process (in-process uvicorn). The registry is the test process's, so
every assertion compares a scrape with the one before it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import orjson
from httpx_ws import aconnect_ws
from redis.asyncio import Redis

from taskstore import Keys, TaskQueue
from tests.conftest import LiveServer
from tests.factories import submit
from tests.helpers import RedisProcess, wait_for
from tests.ops.stack import read_events, sample, scrape
from worker.runner import Runner


async def task_status(client: httpx.AsyncClient, task_id: str) -> str:
    status: str = (await client.get(f"/tasks/{task_id}")).json()["status"]
    return status


async def test_metrics_is_prometheus_text(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE taskcast_tasks_submitted_total counter" in response.text
    assert sample(response.text, "taskcast_redis_up") == 1


async def test_submissions_are_counted_cached_or_not(
    client: httpx.AsyncClient, live_server: LiveServer, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    start_worker()
    before = await scrape(live_server.url)

    task_id = await submit(client, "count me")
    await wait_for(lambda: _is_done(client, task_id, redis), what="the task and its cache entry")
    cached = await client.post("/tasks", json={"prompt": "count me", "params": {}})

    after = await scrape(live_server.url)
    assert cached.status_code == 200
    for label in ("true", "false"):
        name = "taskcast_tasks_submitted_total"
        assert sample(after, name, cached=label) - sample(before, name, cached=label) == 1


async def test_queue_depth_is_read_from_redis_at_each_scrape(
    client: httpx.AsyncClient, live_server: LiveServer, redis: Redis, queue: TaskQueue
) -> None:
    for i in range(3):
        await submit(client, f"waiting {i}")
    await queue.ensure_group()
    await queue.read("probe", [(s, 1) for s in queue.shards[:1]])
    await redis.zadd(Keys().shards[0].delayed, {"retry-me": 1.0})

    metrics = await scrape(live_server.url)

    assert sample(metrics, "taskcast_queue_length") == 3
    assert sample(metrics, "taskcast_queue_pending") == 1
    assert sample(metrics, "taskcast_queue_delayed") == 1
    assert sample(metrics, "taskcast_dead_letters") == 0


async def test_queue_depth_and_dead_letters_are_reported_by_kind(
    start_server: Callable[..., LiveServer], redis: Redis
) -> None:
    server = start_server(task_kinds="default,summary")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        for i in range(2):
            await client.post("/tasks", json={"prompt": f"summary {i}", "kind": "summary"})
    await redis.xadd(Keys().of_kind("summary").shards[0].dead_letter, {"task_id": "t"})

    metrics = await scrape(server.url)

    assert sample(metrics, "taskcast_queue_length", kind="summary") == 2
    assert sample(metrics, "taskcast_queue_length", kind="default") == 0
    assert sample(metrics, "taskcast_dead_letters", kind="summary") == 1


async def test_open_streams_are_counted_by_transport(
    client: httpx.AsyncClient, live_server: LiveServer
) -> None:
    task_id = await submit(client, "watched three ways")
    before = await scrape(live_server.url)
    got_snapshot = asyncio.Event()

    sse = asyncio.create_task(read_events(client, task_id, got_snapshot.set))
    async with (
        aconnect_ws(f"{live_server.ws_url}/tasks/{task_id}/ws", client) as ws,
        aconnect_ws(f"{live_server.ws_url}/ws", client) as multiplexed,
    ):
        await ws.receive_text()
        await multiplexed.send_text(orjson.dumps({"op": "subscribe", "task_id": task_id}).decode())
        await multiplexed.receive_text()
        await got_snapshot.wait()
        during = await scrape(live_server.url)
        sse.cancel()
    await asyncio.gather(sse, return_exceptions=True)

    for transport in ("sse", "ws", "ws_multiplexed"):
        assert _delta(during, before, "taskcast_streams_open", transport=transport) == 1
    assert _delta(during, before, "taskcast_hub_watched_tasks") == 1
    assert _delta(during, before, "taskcast_hub_subscribers") == 3
    await wait_for(lambda: _back_to(live_server, before), what="every stream closed and counted down")


async def test_delivery_latency_is_sampled_for_live_events_not_snapshots(
    client: httpx.AsyncClient, live_server: LiveServer, start_worker: Callable[..., Runner]
) -> None:
    task_id = await submit(client, "timed", duration=0.1, steps=2)
    got_snapshot = asyncio.Event()
    stream = asyncio.create_task(read_events(client, task_id, got_snapshot.set))
    await got_snapshot.wait()
    before = await scrape(live_server.url)

    start_worker()
    events = await stream

    after = await scrape(live_server.url)
    assert events[0]["status"] == "PENDING" and events[-1]["status"] == "DONE"
    assert _delta(after, before, "taskcast_event_delivery_seconds_count") == len(events) - 1


async def test_hub_reconnects_and_redis_outages_show(
    own_redis: RedisProcess, start_server: Callable[..., LiveServer]
) -> None:
    server = start_server(redis_url=own_redis.url)
    before = await scrape(server.url)

    own_redis.stop()
    during = await scrape(server.url)
    own_redis.start()

    assert sample(during, "taskcast_redis_up") == 0
    assert "taskcast_queue_length" not in during
    after = await wait_for(lambda: _reconnected(server, before), timeout=20, what="the hub's reconnect")
    assert sample(after, "taskcast_redis_up") == 1


async def _is_done(client: httpx.AsyncClient, task_id: str, redis: Redis) -> bool:
    return await task_status(client, task_id) == "DONE" and bool(await redis.keys(f"{Keys().prefix}:cache:*"))


async def _back_to(server: LiveServer, before: str) -> bool:
    now = await scrape(server.url)
    names = ("taskcast_hub_watched_tasks", "taskcast_hub_subscribers")
    streams = all(
        _delta(now, before, "taskcast_streams_open", transport=t) == 0
        for t in ("sse", "ws", "ws_multiplexed")
    )
    return streams and all(_delta(now, before, name) == 0 for name in names)


async def _reconnected(server: LiveServer, before: str) -> str | None:
    now = await scrape(server.url)
    reconnected = _delta(now, before, "taskcast_hub_reconnects_total") >= 1
    return now if reconnected and sample(now, "taskcast_hub_connected") >= 1 else None


def _delta(after: str, before: str, name: str, **labels: str) -> float:
    return sample(after, name, **labels) - sample(before, name, **labels)
