"""Test helpers: free ports, redis-server processes, deadlines, subprocess workers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from starlette.types import ASGIApp

from server.embedded_redis import EmbeddedRedis, free_port
from taskstore import Keys
from taskstore.topology import Client, Topology, make_client
from worker.handlers import load_handler
from worker.runner import Runner
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[1]

__all__ = [
    "RedisProcess",
    "ServedApp",
    "both_topologies",
    "free_port",
    "keys_written",
    "spawn_api",
    "spawn_worker",
    "wait_for",
]

# Runs a test (or, as `pytestmark`, a module) on a single node and on a 3-primary cluster.
both_topologies = pytest.mark.parametrize("topology", ["single", "cluster"], indirect=True)


async def listen(redis: Redis | RedisCluster, channel: str) -> tuple[PubSub, Callable[..., Awaitable[Any]]]:
    """A pub/sub subscribed to a task's channel (SSUBSCRIBE on a cluster) and its get-message call."""
    pubsub = redis.pubsub()
    if isinstance(redis, RedisCluster):
        await pubsub.ssubscribe(channel)
        return pubsub, pubsub.get_sharded_message
    await pubsub.subscribe(channel)
    return pubsub, pubsub.get_message


class RedisProcess(EmbeddedRedis):
    """A private redis-server for a test; never the machine's shared one."""

    def restart(self) -> None:
        self.stop()
        self.start()


async def wait_for(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        await asyncio.sleep(interval)


async def keys_written(redis: Redis, keys: Keys | None = None) -> list[bytes]:
    """What requests wrote: every key but the queue's shard streams (of every kind) while they stay
    as the API created them at start (empty, with the workers' group), whatever the number of
    shards."""
    queue = (keys or Keys()).queue.encode()
    written = []
    for key in await redis.keys("*"):
        if not key.startswith(queue) or await redis.type(key) != b"stream" or await redis.xlen(key):
            written.append(key)
    return written


def spawn_worker(redis_url: str, **env: str) -> subprocess.Popen[bytes]:
    """`python -m worker` as a real process, for crash and signal tests."""
    full_env = {**os.environ, "REDIS_URL": redis_url, **{k.upper(): v for k, v in env.items()}}
    return subprocess.Popen(
        [sys.executable, "-m", "worker"],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def spawn_api(redis_url: str, port: int, **env: str) -> subprocess.Popen[bytes]:
    """`uvicorn server.main:app` as a real process, for signal and multi-process tests."""
    full_env = {**os.environ, "REDIS_URL": redis_url, **{k.upper(): v for k, v in env.items()}}
    args = [sys.executable, "-m", "uvicorn", "server.main:app", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--timeout-graceful-shutdown", "3", "--log-level", "warning"]
    log = ROOT / "test-artifacts" / f"api-{port}.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("wb") as out:
        return subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)


class ServedApp:
    """uvicorn serving `app` in a thread on `port` (a free one by default)."""

    def __init__(self, app: ASGIApp, port: int | None = None) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            timeout_graceful_shutdown=1,
            ws_ping_interval=None,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServedApp:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        if self.thread.is_alive():
            raise RuntimeError(f"uvicorn on port {self.port} did not stop within 10 s")


class InProcessWorkers:
    """Workers run on the test's loop, each with its own client; stopped and awaited together."""

    def __init__(self, topology: Topology, stop_timeout: float) -> None:
        self.topology = topology
        self.stop_timeout = stop_timeout
        self._running: list[tuple[asyncio.Event, asyncio.Task[None], Client]] = []

    def start(self, ws: WorkerSettings) -> Runner:
        redis = make_client(ws.redis_url, self.topology)
        runner = Runner(ws, redis, ws.keys_for(self.topology), load_handler(ws.handler))
        stop = asyncio.Event()
        self._running.append((stop, asyncio.create_task(runner.run(stop)), redis))
        return runner

    async def stop_all(self) -> None:
        for stop, task, redis in self._running:
            stop.set()
            await asyncio.wait_for(task, timeout=self.stop_timeout)
            await redis.aclose()
