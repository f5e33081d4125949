"""Fixtures: a real redis-server for the session, real uvicorn servers, in-process workers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from server.embedded_cluster import EmbeddedCluster
from server.main import create_app
from server.ops import logs
from server.settings import Settings
from taskstore import Keys, TaskQueue, TaskStore
from taskstore.topology import Topology
from tests.helpers import ROOT, InProcessWorkers, RedisProcess, ServedApp
from worker.runner import Runner
from worker.settings import WorkerSettings

SERVER_LOG = ROOT / "test-artifacts" / "servers.log"


@pytest.fixture(scope="session", autouse=True)
def _app_logs_to_a_file() -> Iterator[None]:
    """Apps created in this process log to test-artifacts/servers.log, never to the terminal.

    `create_app` puts a stderr handler on the root logger. A line a server thread writes while
    pytest is between two tests (a stream's "closed" line, a reconnect warning) went straight
    to the terminal, between the progress dots. Each handler it installs is swapped for one
    shared file handler; pytest's own handlers stay, so a failing test still shows its log.
    """
    SERVER_LOG.parent.mkdir(exist_ok=True)
    SERVER_LOG.write_text("")
    # Appending: uvicorn's dictConfig closes every handler, and only an appending one reopens.
    to_file = logging.FileHandler(SERVER_LOG, mode="a", encoding="utf-8")
    configure = logs.configure

    def configure_to_file(*args: Any, **kwargs: Any) -> None:
        configure(*args, **kwargs)
        _divert_root_handlers(to_file)

    patch = pytest.MonkeyPatch()
    patch.setattr(logs, "configure", configure_to_file)
    yield
    patch.undo()
    logging.getLogger().removeHandler(to_file)
    to_file.close()


def _divert_root_handlers(to_file: logging.Handler) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler is not to_file and not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
            to_file.setFormatter(handler.formatter)
    if to_file not in root.handlers:
        root.addHandler(to_file)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    server = RedisProcess().start()
    yield server.url
    server.remove()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[EmbeddedCluster]:
    """A 3-primary Redis Cluster, started the first time a test asks for the cluster topology."""
    cluster = EmbeddedCluster(primaries=3).start()
    yield cluster
    cluster.remove()


@pytest.fixture
def topology(request: pytest.FixtureRequest) -> Topology:
    """Single node unless the test is parametrized with `both_topologies` (tests/helpers.py)."""
    return Topology(cluster=getattr(request, "param", "single") == "cluster")


@pytest.fixture
def keys(topology: Topology) -> Keys:
    """The default key names on the test's topology (1 queue shard, or 16 on the cluster)."""
    return Keys(shard_count=topology.shards(0), legacy_queue=not topology.cluster)


@pytest.fixture
async def redis(clean_redis: str, topology: Topology) -> AsyncIterator[Redis | RedisCluster]:
    client: Redis | RedisCluster = (
        RedisCluster.from_url(clean_redis) if topology.cluster else Redis.from_url(clean_redis)
    )
    yield client
    await client.aclose()


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    """A private redis-server (with AOF) for tests that kill or restart Redis."""
    server = RedisProcess(appendonly=True).start()
    yield server
    server.remove()


@pytest.fixture
def clean_redis(topology: Topology, request: pytest.FixtureRequest) -> str:
    """The session server's (or cluster's) URL, its data emptied for this test."""
    if topology.cluster:
        cluster: EmbeddedCluster = request.getfixturevalue("redis_cluster")
        cluster.flush()
        return cluster.url
    redis_server: str = request.getfixturevalue("redis_server")
    client = SyncRedis.from_url(redis_server)
    client.flushdb()
    client.close()
    return redis_server


@pytest.fixture
def settings(clean_redis: str) -> Settings:
    return Settings(redis_url=clean_redis, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def make_worker_settings(clean_redis: str) -> Callable[..., WorkerSettings]:
    def make(**overrides: Any) -> WorkerSettings:
        values: dict[str, Any] = {"redis_url": clean_redis, "read_block_ms": 50, "shutdown_grace": 2.0}
        return WorkerSettings(_env_file=None, **{**values, **overrides})  # type: ignore[call-arg]

    return make


@pytest.fixture
def store(redis: Redis, keys: Keys) -> TaskStore:
    return TaskStore(redis, keys)


@pytest.fixture
def queue(redis: Redis, keys: Keys) -> TaskQueue:
    return TaskQueue(redis, keys)


@pytest.fixture(autouse=True)
def _reset_sse_exit_flag() -> None:
    # sse-starlette keeps one process-wide "should exit" flag that never resets by itself.
    from sse_starlette.sse import AppStatus

    AppStatus.should_exit = False


class LiveServer(ServedApp):
    """uvicorn serving `create_app(settings)` in a thread on a free port."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(create_app(settings))
        self.settings = settings

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        super().start()
        return self


@pytest.fixture
def start_server(settings: Settings) -> Iterator[Callable[..., LiveServer]]:
    """Factory: start a live server with `settings` overridden by keyword arguments."""
    servers: list[LiveServer] = []

    def start(**overrides: Any) -> LiveServer:
        # Validated (model_copy does not): API_KEY becomes a SecretStr, a short TOKEN_SECRET fails.
        server = LiveServer(Settings.model_validate({**settings.model_dump(), **overrides})).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def live_server(start_server: Callable[..., LiveServer]) -> LiveServer:
    return start_server()


@pytest.fixture
async def client(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as c:
        yield c


@pytest.fixture
async def start_worker(
    make_worker_settings: Callable[..., WorkerSettings], topology: Topology
) -> AsyncIterator[Callable[..., Runner]]:
    """Factory: run an in-process worker on the test's loop; stopped and awaited at teardown."""
    workers = InProcessWorkers(topology, stop_timeout=15)
    yield lambda **overrides: workers.start(make_worker_settings(**overrides))
    await workers.stop_all()
