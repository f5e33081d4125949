"""GET /tasks: newest first, stable pages while tasks arrive, filters read from the indexes."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import httpx

from taskstore import Move, TaskStatus, TaskStore
from tests.conftest import LiveServer
from tests.helpers import both_topologies, wait_for


async def _submit(store: TaskStore, n: int, prefix: str = "task") -> list[str]:
    return [(await store.submit(f"{prefix} {i}", {"n": i})).task_id for i in range(n)]


async def _pages(client: httpx.AsyncClient, between: Callable[[], Any], **params: Any) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        answer = (await client.get("/tasks", params=query)).raise_for_status().json()
        pages.append([t["task_id"] for t in answer["tasks"]])
        cursor = answer["next_cursor"]
        if cursor is None:
            return pages
        await between()


@both_topologies
async def test_pages_stay_stable_while_tasks_are_added(client: httpx.AsyncClient, store: TaskStore) -> None:
    first = await _submit(store, 25, "old")

    async def add_more() -> None:
        await _submit(store, 7, "new")

    pages = await _pages(client, add_more, limit=10)

    listed = [task_id for page in pages for task_id in page]
    assert listed == list(reversed(first))
    assert [len(p) for p in pages] == [10, 10, 5]


@both_topologies
async def test_rows_carry_state_and_kind_newest_first(client: httpx.AsyncClient, store: TaskStore) -> None:
    ids = await _submit(store, 3)

    answer = (await client.get("/tasks")).json()

    assert [t["task_id"] for t in answer["tasks"]] == ids[::-1]
    row = answer["tasks"][0]
    assert row["status"] == "PENDING" and row["kind"] == "default" and row["attempts"] == 0
    assert answer["next_cursor"] is None


@both_topologies
async def test_status_filter_follows_every_move(client: httpx.AsyncClient, store: TaskStore) -> None:
    ids = await _submit(store, 6)
    for task_id in ids[1:]:
        await store.move(Move(task_id, TaskStatus.RUNNING, new_token="t", new_attempt=True))
    await store.move(Move(ids[2], TaskStatus.DONE, {"result": '"ok"'}, token="t"))
    await store.move(Move(ids[3], TaskStatus.FAILED, {"error": "boom"}, token="t"))
    await store.cancel(ids[4])

    async def listed(**params: str) -> list[str]:
        return [t["task_id"] for t in (await client.get("/tasks", params=params)).json()["tasks"]]

    assert await listed(status="PENDING") == [ids[0]]
    assert await listed(status="RUNNING") == [ids[5], ids[1]]
    assert await listed(status="DONE") == [ids[2]]
    assert await listed(status="FAILED") == [ids[3]]
    assert await listed(status="CANCELLED") == [ids[4]]
    assert await listed(kind="default") == ids[::-1]
    assert await listed(kind="other") == []
    assert await listed(status="RUNNING", kind="default") == [ids[5], ids[1]]
    failed = (await client.get("/tasks", params={"status": "FAILED"})).json()["tasks"][0]
    assert failed["error"] == "boom" and failed["attempts"] == 1


@both_topologies
async def test_a_page_of_a_filter_is_stable_while_tasks_move(
    client: httpx.AsyncClient, store: TaskStore
) -> None:
    ids = await _submit(store, 12)
    first = (await client.get("/tasks", params={"limit": 5})).json()

    for task_id in ids:  # every task changes index between the two pages
        await store.move(Move(task_id, TaskStatus.RUNNING, new_token="t", new_attempt=True))
    rest = (await client.get("/tasks", params={"limit": 50, "cursor": first["next_cursor"]})).json()

    listed = [t["task_id"] for t in first["tasks"] + rest["tasks"]]
    assert listed == ids[::-1]


@both_topologies
async def test_bad_filters_get_422(client: httpx.AsyncClient) -> None:
    for params in (
        {"status": "SLEEPING"},
        {"kind": "no such!"},
        {"cursor": "garbage"},
        {"cursor": "1.5~XYZ"},
        {"limit": "0"},
        {"limit": "201"},
    ):
        answer = await client.get("/tasks", params=params)

        assert answer.status_code == 422, params


async def test_tasks_older_than_the_result_expiry_are_not_listed(
    start_server: Callable[..., LiveServer], store: TaskStore
) -> None:
    server = start_server(result_expiry=1)
    short = TaskStore(store.redis, store.keys, result_ttl=1)
    await _submit(short, 2)

    async with httpx.AsyncClient(base_url=server.url) as client:

        async def listed() -> int:
            return len((await client.get("/tasks")).json()["tasks"])

        assert await listed() == 2
        await wait_for(lambda: _empty(listed), timeout=5, what="expired tasks to leave the list")

    index = store.keys.index("default", "PENDING", store.keys.shards[0].tag)
    old = set(await store.redis.zrange(index, 0, -1))
    for _ in range(20_000):  # one write in 256 trims the index: the one whose task id ends in 00
        if (await short.submit("later", {"n": os.urandom(4).hex()})).task_id.endswith("00"):
            break
    left = set(await store.redis.zrange(index, 0, -1))
    assert len(old) == 2 and not old & left


async def _empty(count: Callable[[], Any]) -> bool:
    return await count() == 0
