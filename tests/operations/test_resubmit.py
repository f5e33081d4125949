"""POST /tasks/{id}/resubmit and the dead letters: a new task from what failed, the old stays FAILED."""

from __future__ import annotations

import time

import httpx

from taskstore import Move, TaskStatus, TaskStore
from taskstore.deadletters import DeadLetter, DeadLetters
from tests.helpers import both_topologies

pytestmark = both_topologies


async def _failed(store: TaskStore, prompt: str) -> str:
    task_id = (await store.submit(prompt, {"x": 1})).task_id
    await store.move(Move(task_id, TaskStatus.RUNNING, new_token="t", new_attempt=True))
    await store.move(Move(task_id, TaskStatus.FAILED, {"error": "boom"}, token="t"))
    return task_id


async def test_resubmit_makes_a_new_task_with_the_same_request(
    client: httpx.AsyncClient, store: TaskStore
) -> None:
    old = await _failed(store, "try again")

    answer = await client.post(f"/tasks/{old}/resubmit")

    body = answer.json()
    assert answer.status_code == 202 and body["status"] == "PENDING" and body["resubmitted_from"] == old
    assert answer.headers["location"] == f"/tasks/{body['task_id']}"
    assert (await client.get(f"/tasks/{old}")).json()["status"] == "FAILED"
    request = await store.redis.hget(store.keys.task(body["task_id"]), "request")
    assert request == await store.redis.hget(store.keys.task(old), "request")


async def test_resubmit_refuses_a_task_that_did_not_fail(client: httpx.AsyncClient, store: TaskStore) -> None:
    pending = (await store.submit("still waiting", {})).task_id

    refused = await client.post(f"/tasks/{pending}/resubmit")
    unknown = await client.post("/tasks/0123abcd/resubmit")

    assert refused.status_code == 409 and refused.json()["status"] == "PENDING"
    assert unknown.status_code == 404
    assert len((await client.get("/tasks")).json()["tasks"]) == 1  # nothing new written


async def test_requeue_submits_a_dead_letter_again_and_removes_it(
    client: httpx.AsyncClient, store: TaskStore
) -> None:
    letters = DeadLetters(store.redis, store.keys)
    old = await _failed(store, "dead")
    request = (await store.redis.hget(store.keys.task(old), "request")).decode()
    entry = await letters.add(DeadLetter(old, "boom", 4, request, time.time()))

    listed = (await client.get("/deadletters")).json()
    by_task = await client.post(f"/deadletters/{old}/requeue")
    again = await client.post(f"/deadletters/{entry}/requeue")

    assert [(d["entry_id"], d["task_id"], d["error"]) for d in listed] == [(entry, old, "boom")]
    assert by_task.status_code == 202 and by_task.json()["resubmitted_from"] == old
    assert again.status_code == 404
    assert await letters.list() == []


async def test_a_dead_letter_without_a_usable_request_is_refused(
    client: httpx.AsyncClient, store: TaskStore
) -> None:
    entry = await DeadLetters(store.redis, store.keys).add(DeadLetter("0abc", "garbled", 0, "", time.time()))

    answer = await client.post(f"/deadletters/{entry}/requeue")

    assert answer.status_code == 409 and "no usable request" in answer.json()["detail"]
