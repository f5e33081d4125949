"""POST /tasks options: kind, delay, Idempotency-Key, and the coalescing of identical requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from redis.asyncio import Redis

from server.main import create_app
from server.settings import Settings
from taskstore import Keys, TaskQueue, TaskStore, decode_state
from tests.conftest import LiveServer
from tests.helpers import both_topologies, keys_written, listen, wait_for
from tests.worker.waits import final
from worker.runner import Runner

BODY: dict[str, Any] = {"prompt": "same question", "params": {"duration": 1}}

pytestmark = both_topologies


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    update = {"task_kinds": "default,summary", "max_delay": 60}
    with TestClient(create_app(settings.model_copy(update=update))) as c:
        yield c


def _field(response: httpx.Response) -> list[str]:
    return [".".join(str(part) for part in error["loc"]) for error in response.json()["detail"]]


async def test_a_kind_is_queued_on_its_own_stream_and_shown_in_the_state(
    api: TestClient, redis: Redis, keys: Keys
) -> None:
    task_id = api.post("/tasks", json={"prompt": "p", "kind": "summary"}).json()["task_id"]

    state = api.get(f"/tasks/{task_id}").json()
    assert state["kind"] == "summary"
    assert await TaskQueue(redis, keys.of_kind("summary")).backlog() == 1
    assert await TaskQueue(redis, keys).backlog() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "p", "kind": "render"}, "body.kind"),
        ({"prompt": "p", "kind": "Bad:Kind"}, "body.kind"),
        ({"prompt": "p", "kind": ["summary"]}, "body.kind"),
        ({"prompt": "p", "delay": 61}, "body.delay"),
        ({"prompt": "p", "delay": -1}, "body.delay"),
        ({"prompt": "p", "delay": "soon"}, "body.delay"),
    ],
)
async def test_an_unknown_kind_or_a_bad_delay_is_422_naming_it_and_writes_nothing(
    api: TestClient, redis: Redis, body: dict[str, Any], field: str
) -> None:
    response = api.post("/tasks", json=body)

    assert response.status_code == 422
    assert _field(response) == [field]
    assert await keys_written(redis) == []


async def test_without_the_default_kind_in_task_kinds_a_body_needs_a_kind(
    settings: Settings, redis: Redis
) -> None:
    with TestClient(create_app(settings.model_copy(update={"task_kinds": "summary"}))) as api:
        response = api.post("/tasks", json={"prompt": "p"})

    assert response.status_code == 422
    assert "kind is required" in response.json()["detail"][0]["msg"]
    assert await keys_written(redis) == []


def test_the_same_request_of_two_kinds_is_two_tasks(api: TestClient) -> None:
    first = api.post("/tasks", json={"prompt": "p"}).json()
    second = api.post("/tasks", json={"prompt": "p", "kind": "summary"}).json()

    assert first["task_id"] != second["task_id"]
    assert not second.get("coalesced")


def test_a_bad_idempotency_key_is_422(api: TestClient) -> None:
    response = api.post("/tasks", json=BODY, headers={"Idempotency-Key": "x" * 256})

    assert response.status_code == 422
    assert _field(response) == ["header.idempotency-key"]


async def test_20_concurrent_posts_with_one_key_make_one_task(
    start_server: Callable[..., LiveServer], redis: Redis, keys: Keys
) -> None:
    server = start_server(coalesce=False)
    headers = {"Idempotency-Key": '"order-42"'}

    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        posts = [client.post("/tasks", json=BODY, headers=headers) for _ in range(20)]
        answers = await asyncio.gather(*posts)

    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["task_id"] for a in answers}) == 1
    assert sum(bool(a.json().get("replayed")) for a in answers) == 19
    assert await TaskQueue(redis, keys).backlog() == 1


async def test_a_repeat_after_done_answers_the_same_task_and_another_body_is_422(
    client: httpx.AsyncClient, start_worker: Callable[..., Runner], store: TaskStore
) -> None:
    start_worker()
    headers = {"Idempotency-Key": "k-1"}
    body = {"prompt": "once", "params": {"duration": 0.05}}
    first = await client.post("/tasks", json=body, headers=headers)
    await final(store, first.json()["task_id"])

    repeat = await client.post("/tasks", json=body, headers=headers)
    other = await client.post("/tasks", json={**body, "prompt": "twice"}, headers=headers)

    assert first.status_code == 202
    assert repeat.status_code == 200
    assert repeat.json()["task_id"] == first.json()["task_id"]
    assert (repeat.json()["status"], repeat.json()["replayed"]) == ("DONE", True)
    assert other.status_code == 422
    assert _field(other) == ["header.idempotency-key"]


async def test_10_concurrent_identical_posts_make_one_task_and_one_run(
    client: httpx.AsyncClient, start_worker: Callable[..., Runner], store: TaskStore
) -> None:
    runner = start_worker()

    answers = await asyncio.gather(*(client.post("/tasks", json=BODY) for _ in range(10)))
    task_ids = {a.json()["task_id"] for a in answers}
    state = await final(store, task_ids.pop())

    async def counted() -> bool:  # the worker counts a run once its DONE write has returned
        return runner.completed > 0

    await wait_for(counted, what="the worker to count its run")
    assert not task_ids
    assert sum(bool(a.json().get("coalesced")) for a in answers) == 9
    assert state["status"] == "DONE"
    assert runner.completed == 1


async def test_after_failed_an_identical_request_makes_a_new_task(
    client: httpx.AsyncClient, start_worker: Callable[..., Runner], store: TaskStore
) -> None:
    start_worker(max_retries=0)
    body = {"prompt": "doomed", "params": {"fail": True}}
    first = (await client.post("/tasks", json=body)).json()["task_id"]
    await final(store, first)

    again = await client.post("/tasks", json=body)

    assert again.status_code == 202
    assert again.json()["task_id"] != first
    assert not again.json().get("coalesced")


async def test_a_cancelled_task_is_never_coalesced_onto(client: httpx.AsyncClient) -> None:
    first = (await client.post("/tasks", json=BODY)).json()["task_id"]
    assert (await client.delete(f"/tasks/{first}")).status_code == 202

    again = (await client.post("/tasks", json=BODY)).json()

    assert again["task_id"] != first


async def test_coalesce_false_makes_every_request_a_task(start_server: Callable[..., LiveServer]) -> None:
    server = start_server(coalesce=False)

    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        answers = await asyncio.gather(*(client.post("/tasks", json=BODY) for _ in range(10)))

    assert len({a.json()["task_id"] for a in answers}) == 10


async def test_a_delayed_task_waits_for_its_time_then_runs(
    client: httpx.AsyncClient, start_worker: Callable[..., Runner], redis: Redis, store: TaskStore
) -> None:
    start_worker()

    answer = (await client.post("/tasks", json={"prompt": "later", "delay": 2})).json()
    pending = (await client.get(f"/tasks/{answer['task_id']}")).json()
    await store.state(answer["task_id"])  # a first command: a cluster client learns the slots
    # Every event, none merged (a stream may let DONE supersede RUNNING).
    pubsub, get_message = await listen(redis, store.keys.channel(answer["task_id"]))
    events = await _published_until_end(get_message)
    await pubsub.aclose()

    running = next(e for e in events if e["status"] == "RUNNING")
    assert (pending["status"], pending["run_at"]) == ("PENDING", answer["run_at"])
    assert running["updated_at"] >= answer["run_at"]
    assert events[-1]["status"] == "DONE"


async def _published_until_end(get_message: Callable[..., Awaitable[Any]]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 15
    while not events or events[-1]["status"] not in ("DONE", "FAILED", "CANCELLED"):
        if time.monotonic() > deadline:
            raise AssertionError(f"the task did not end within 15 s; events so far {events}")
        message = await get_message(ignore_subscribe_messages=True, timeout=1)
        if message is not None:  # None: a subscribe confirmation, or nothing within the second
            events.append(decode_state(message["data"]))
    return events


async def test_a_delayed_task_cancelled_before_its_time_never_starts(
    client: httpx.AsyncClient, start_worker: Callable[..., Runner], redis: Redis, store: TaskStore
) -> None:
    start_worker()
    task_id = (await client.post("/tasks", json={"prompt": "never", "delay": 0.5})).json()["task_id"]

    cancelled = await client.delete(f"/tasks/{task_id}")
    await wait_for(lambda: _queue_drained(redis, store.keys), what="the due entry to be taken and acked")

    state = (await client.get(f"/tasks/{task_id}")).json()
    assert cancelled.status_code == 202
    assert (state["status"], state["attempts"]) == ("CANCELLED", 0)


async def test_a_delayed_task_leaves_the_delayed_set_when_cancelled(
    client: httpx.AsyncClient, redis: Redis, store: TaskStore
) -> None:
    task_id = (await client.post("/tasks", json={"prompt": "an hour", "delay": 3600})).json()["task_id"]
    delayed = store.keys.shard_of_task(task_id).delayed
    waiting = await redis.zscore(delayed, task_id)

    cancelled = await client.delete(f"/tasks/{task_id}")

    assert waiting is not None
    assert cancelled.json()["status"] == "CANCELLED"
    assert await redis.zscore(delayed, task_id) is None  # not counted as delayed for an hour


async def _queue_drained(redis: Redis, keys: Keys) -> bool:
    return await TaskQueue(redis, keys).outstanding() == 0
