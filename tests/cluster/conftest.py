"""Fixtures of the cluster-only tests: a private cluster with replicas, an API and workers on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from server.embedded_cluster import EmbeddedCluster
from server.settings import Settings
from taskstore.topology import Topology
from tests.conftest import LiveServer
from tests.helpers import InProcessWorkers
from worker.runner import Runner
from worker.settings import WorkerSettings

CLUSTER = Topology(cluster=True)


@pytest.fixture
def replicated_cluster() -> Iterator[EmbeddedCluster]:
    """3 primaries with a replica each, a 1 s node timeout; private: the test may kill nodes."""
    cluster = EmbeddedCluster(primaries=3, replicas=1, node_timeout_ms=1000).start()
    cluster.wait_replicated()
    yield cluster
    cluster.remove()


@pytest.fixture
def cluster_api(replicated_cluster: EmbeddedCluster, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """The API on the cluster; settings overridden by an indirect parameter (a dict) if given."""
    overrides: dict[str, Any] = getattr(request, "param", {})
    settings = Settings(redis_url=replicated_cluster.url, _env_file=None, **overrides)  # type: ignore[call-arg]
    server = LiveServer(settings).start()
    yield server
    server.stop()


@pytest.fixture
async def cluster_workers(replicated_cluster: EmbeddedCluster) -> AsyncIterator[Callable[..., Runner]]:
    """Factory: in-process workers on the cluster; stopped and awaited at teardown."""
    workers = InProcessWorkers(CLUSTER, stop_timeout=20)

    def start(**overrides: Any) -> Runner:
        values: dict[str, Any] = {"redis_url": replicated_cluster.url, "read_block_ms": 100, **overrides}
        return workers.start(WorkerSettings(_env_file=None, **values))  # type: ignore[call-arg]

    yield start
    await workers.stop_all()
