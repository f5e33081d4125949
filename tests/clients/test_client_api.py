"""The client's user API, async and sync, against a real server and worker: kinds, delays,
Idempotency-Keys on retried POSTs, wait() and watch() on every transport."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from redis.asyncio import Redis

from taskcast_client import SyncTaskcastClient, TaskcastClient, TaskFailed, Transport
from taskstore import Keys, TaskQueue
from tests.clients.conftest import ServeBehind
from tests.clients.servers import LosesFirstAnswer
from tests.conftest import LiveServer
from tests.helpers import both_topologies
from tests.reliability.procs import WorkerProcess
from worker.runner import Runner

TRANSPORTS = ["auto", "sse", "ws", "poll"]

pytestmark = both_topologies


@pytest.fixture
def two_kinds(start_server: Callable[..., LiveServer]) -> LiveServer:
    return start_server(task_kinds="default,summary")


@pytest.fixture
def worker_process(clean_redis: str, request: pytest.FixtureRequest) -> Iterator[WorkerProcess]:
    """A real worker serving the default kind (the demo handler) and "summary", no retries."""
    handlers = "summary=worker.handlers:demo"
    worker = WorkerProcess(clean_redis, request.node.name, handler="worker.handlers:demo", handlers=handlers)
    yield worker
    worker.stop()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sync_client_submits_a_kind_and_waits_on_every_transport(
    two_kinds: LiveServer, worker_process: WorkerProcess, transport: Transport
) -> None:
    with SyncTaskcastClient(two_kinds.url) as client:
        task = client.submit("summary", f"sync {transport}", {"duration": 0.2, "steps": 2})
        states = list(client.watch(task["task_id"], transport))
        final = client.wait(task["task_id"], transport)

    assert task["status"] == "PENDING"
    assert [s["seq"] for s in states] == sorted({s["seq"] for s in states})
    assert states[-1] == final
    assert (final["status"], final["kind"]) == ("DONE", "summary")
    assert client.transport == ("sse" if transport == "auto" else transport)


def test_sync_client_wait_raises_on_failed_and_cancel_works(
    two_kinds: LiveServer, worker_process: WorkerProcess
) -> None:
    with SyncTaskcastClient(two_kinds.url) as client:
        doomed = client.submit(None, "doomed", {"fail": True})
        with pytest.raises(TaskFailed) as failed:
            client.wait(doomed["task_id"])
        later = client.submit(None, "later", delay=30)
        cancelled = client.cancel(later["task_id"])

    assert failed.value.state["status"] == "FAILED"
    assert "failed on purpose" in str(failed.value)
    assert later["run_at"] is not None
    assert cancelled["status"] == "CANCELLED"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_async_client_submits_and_waits_on_every_transport(
    live_server: LiveServer, worker: Runner, transport: Transport
) -> None:
    async with TaskcastClient(live_server.url) as client:
        task = await client.submit(None, f"async {transport}", {"duration": 0.2, "steps": 2})
        final = await client.wait(task["task_id"], transport)
        got = await client.get(task["task_id"])

    assert final == got
    assert (final["status"], final["kind"]) == ("DONE", "default")


async def test_a_given_idempotency_key_answers_the_same_task(live_server: LiveServer) -> None:
    async with TaskcastClient(live_server.url) as client:
        first = await client.submit(None, "once", {"duration": 30}, idempotency_key="order-7")
        again = await client.submit(None, "once", {"duration": 30}, idempotency_key="order-7")

    assert again["task_id"] == first["task_id"]
    assert again["replayed"] is True


async def test_a_post_retried_after_a_lost_answer_makes_one_task(
    serve_behind: ServeBehind, redis: Redis, keys: Keys
) -> None:
    server, proxy = serve_behind(LosesFirstAnswer)

    async with TaskcastClient(server.url, backoff=0.01) as client:
        task = await client.submit(None, "retried", {"duration": 30})

    assert task["replayed"] is True
    assert len(proxy.posts) == 2
    assert proxy.posts[0] is not None and proxy.posts[0] == proxy.posts[1]
    assert await TaskQueue(redis, keys).backlog() == 1
