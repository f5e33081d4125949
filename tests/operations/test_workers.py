"""GET /workers: live workers from their heartbeats; a stopped one leaves, a killed one ages out."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import Any

import httpx
from redis.asyncio import Redis

from taskstore.topology import Topology
from tests.conftest import LiveServer
from tests.helpers import spawn_worker, wait_for
from worker.handlers import load_handler
from worker.runner import Runner
from worker.settings import WorkerSettings

GONE_AFTER = 1.5


async def _names(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    answer = (await client.get("/workers")).raise_for_status().json()
    assert answer["gone_after"] == GONE_AFTER
    return {w["name"]: w for w in answer["workers"]}


async def test_a_started_worker_is_listed_and_a_stopped_one_leaves_at_once(
    start_server: Callable[..., LiveServer], make_worker_settings: Callable[..., WorkerSettings]
) -> None:
    server = start_server(worker_gone_after=GONE_AFTER)
    ws = make_worker_settings(consumer_name="w-clean", heartbeat_interval=0.1, max_concurrency=3)
    redis = Redis.from_url(ws.redis_url)
    stop = asyncio.Event()
    keys = ws.keys_for(Topology(cluster=False))
    running = asyncio.create_task(Runner(ws, redis, keys, load_handler(ws.handler)).run(stop))

    async with httpx.AsyncClient(base_url=server.url) as client:
        listed = await wait_for(lambda: _names(client), what="the worker's first heartbeat")
        stop.set()
        await asyncio.wait_for(running, timeout=10)
        after_stop = await _names(client)
    await redis.aclose()

    worker = listed["w-clean"]
    assert worker["pid"] == os.getpid() and worker["concurrency"] == 3 and worker["kinds"] == ["default"]
    assert worker["running"] == 0 and worker["done"] == 0 and worker["failed"] == 0
    assert worker["last_heartbeat"] >= worker["started_at"] > 0 and worker["host"]
    assert after_stop == {}


async def test_a_killed_worker_drops_off_within_the_stated_time(
    start_server: Callable[..., LiveServer], clean_redis: str
) -> None:
    server = start_server(worker_gone_after=GONE_AFTER)
    proc = spawn_worker(clean_redis, consumer_name="w-killed", heartbeat_interval="0.2")
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            listed = await wait_for(lambda: _names(client), timeout=20, what="the worker's heartbeat")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            killed_at = asyncio.get_running_loop().time()
            await wait_for(
                lambda: _gone(client, "w-killed"), timeout=GONE_AFTER + 2, what="the worker to age out"
            )
            took = asyncio.get_running_loop().time() - killed_at
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr is not None:
            proc.stderr.close()

    assert listed["w-killed"]["pid"] == proc.pid
    assert took <= GONE_AFTER + 1.0


async def _gone(client: httpx.AsyncClient, name: str) -> bool:
    return name not in await _names(client)
