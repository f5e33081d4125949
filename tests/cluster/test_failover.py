"""Cluster only: a primary dies (kill -9) or a busy slot moves while tasks run and streams are open."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from server.embedded_cluster import EmbeddedCluster
from taskstore.keys import Keys
from tests.conftest import LiveServer
from tests.factories import submit
from tests.push.sse import sse_events
from worker.runner import Runner

TASKS = 300
FORBIDDEN = ("CROSSSLOT", "MOVED", "ASK ")


class Watch:
    """One open SSE stream: its first event arrived (`open`), then every event until the end."""

    def __init__(self, client: httpx.AsyncClient, task_id: str) -> None:
        self.open = asyncio.Event()
        self.events: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._follow(client, task_id))

    async def _follow(self, client: httpx.AsyncClient, task_id: str) -> None:
        async with client.stream("GET", f"/tasks/{task_id}/events") as response:
            assert response.status_code == 200, response.status_code
            async for event in sse_events(response):
                self.events.append(event)
                self.open.set()

    @property
    def final(self) -> str:
        return str(self.events[-1]["data"]["status"]) if self.events else "none"


async def _flight(client: httpx.AsyncClient, count: int, **params: Any) -> tuple[list[str], list[Watch]]:
    """Submit `count` tasks and open a stream on each; return once every stream has its snapshot."""
    ids = list(await asyncio.gather(*(submit(client, f"flight {i}", **params) for i in range(count))))
    watches = [Watch(client, task_id) for task_id in ids]
    await asyncio.wait_for(asyncio.gather(*(w.open.wait() for w in watches)), 30)
    return ids, watches


def _clean_logs(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r.getMessage() for r in caplog.records if any(word in r.getMessage() for word in FORBIDDEN)]
    assert not bad, bad[:5]


@pytest.mark.timeout(120)
async def test_a_primary_killed_mid_flight_loses_no_task_and_no_terminal_event(
    replicated_cluster: EmbeddedCluster,
    cluster_api: LiveServer,
    cluster_workers: Callable[..., Runner],
    caplog: pytest.LogCaptureFixture,
) -> None:
    for _ in range(2):
        cluster_workers(max_concurrency=60)
    limits = httpx.Limits(max_connections=TASKS + 50)
    async with httpx.AsyncClient(base_url=cluster_api.url, timeout=60, limits=limits) as client:
        ids, watches = await _flight(client, TASKS, duration=1.5, steps=3)
        # Acknowledged writes reach the replicas within milliseconds; wait for that, as a WAIT
        # on submit would, so the test is about failover and not about the replication window.
        await asyncio.to_thread(replicated_cluster.wait_replicated)
        victim = replicated_cluster.primary_ports()[0]

        replicated_cluster.kill(victim)
        await asyncio.wait_for(asyncio.gather(*(w.task for w in watches)), 90)
        states = [(await client.get(f"/tasks/{t}")).json()["status"] for t in ids]

    assert [w.final for w in watches] == ["DONE"] * TASKS
    assert states == ["DONE"] * TASKS
    _clean_logs(caplog)


@pytest.mark.timeout(120)
async def test_moving_a_busy_shards_slot_to_another_primary_loses_no_terminal_event(
    replicated_cluster: EmbeddedCluster,
    cluster_api: LiveServer,
    cluster_workers: Callable[..., Runner],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster_workers(max_concurrency=100)
    keys = Keys(shard_count=16, legacy_queue=False)
    async with httpx.AsyncClient(base_url=cluster_api.url, timeout=60) as client:
        ids, watches = await _flight(client, 120, duration=1.5, steps=3)
        busiest = max(keys.shards, key=lambda s: sum(keys.shard_of_task(t) == s for t in ids))

        await asyncio.to_thread(replicated_cluster.move_slot_of, busiest.stream)
        await asyncio.wait_for(asyncio.gather(*(w.task for w in watches)), 60)
        states = [(await client.get(f"/tasks/{t}")).json()["status"] for t in ids]

    assert [w.final for w in watches] == ["DONE"] * len(ids)
    assert states == ["DONE"] * len(ids)
    _clean_logs(caplog)


@pytest.mark.parametrize("cluster_api", [{"submit_wait_replicas": 1}], indirect=True)
async def test_with_submit_wait_replicas_an_accepted_task_is_already_on_a_replica(
    replicated_cluster: EmbeddedCluster, cluster_api: LiveServer
) -> None:
    keys = Keys(shard_count=16, legacy_queue=False)
    async with httpx.AsyncClient(base_url=cluster_api.url, timeout=10) as client:
        ids = [await submit(client, f"replicated {i}") for i in range(20)]

    on_replicas = [replicated_cluster.replica_has(keys.task(t)) for t in ids]

    assert on_replicas == [True] * 20
