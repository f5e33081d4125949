"""POST /tasks/{id}/resubmit and the dead letters: a new task from what failed, the old stays FAILED."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from taskstore import Move, TaskStatus, TaskStore
from taskstore.deadletters import DeadLetter, DeadLetters
from tests.conftest import LiveServer
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


async def _dead_of_kind(store: TaskStore, kind: str, prompt: str) -> str:
    """A task of `kind` that failed its last attempt, its dead letter written by the move."""
    task_id = (await store.submit(prompt, {"x": 1}, kind=kind)).task_id
    await store.move(Move(task_id, TaskStatus.RUNNING, new_token="t", new_attempt=True, kind=kind))
    await store.move(
        Move(task_id, TaskStatus.FAILED, {"error": f"{kind} boom"}, "t", dead_letter=True, kind=kind)
    )
    return task_id


async def test_dead_letters_of_every_kind_are_listed_and_requeued(
    start_server: Callable[..., LiveServer], store: TaskStore
) -> None:
    server = start_server(task_kinds="default,images")
    plain = await _dead_of_kind(store, "default", "plain")
    image = await _dead_of_kind(store, "images", "image")
    again = await _dead_of_kind(store, "images", "image again")

    async with httpx.AsyncClient(base_url=server.url) as client:
        listed = (await client.get("/deadletters")).json()
        only_images = (await client.get("/deadletters", params={"kind": "images"})).json()
        by_entry = await client.post(f"/deadletters/{listed[1]['entry_id']}/requeue")
        by_task = await client.post(f"/deadletters/{again}/requeue")
        left = (await client.get("/deadletters")).json()
        bad = [await client.get("/deadletters", params={"kind": k}) for k in ("no spaces", "x" * 65)]
        unknown = await client.post("/deadletters/images~0.0:1-0/requeue")

    assert [(d["task_id"], d["kind"]) for d in listed] == [
        (again, "images"),
        (image, "images"),
        (plain, "default"),
    ]
    assert [d["task_id"] for d in only_images] == [again, image]
    assert listed[1]["entry_id"].startswith("images~") and "~" not in listed[2]["entry_id"]
    for answer, source in ((by_entry, image), (by_task, again)):
        assert answer.status_code == 202 and answer.json()["resubmitted_from"] == source
        new = (await store.redis.hget(store.keys.task(answer.json()["task_id"]), "kind")).decode()
        assert new == "images"
    assert [d["task_id"] for d in left] == [plain]
    assert [b.status_code for b in bad] == [422, 422] and unknown.status_code == 404
