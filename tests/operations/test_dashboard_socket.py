"""WS /dashboard/ws: stats frames once a second, list answers, the listed tasks' events, live tail."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from httpx_ws import WebSocketDisconnect, aconnect_ws
from redis.asyncio import Redis, RedisCluster
from redis.crc import key_slot

from taskstore import Keys, Move, TaskStatus, TaskStore
from tests.conftest import LiveServer
from tests.factories import submit
from tests.helpers import both_topologies
from worker.runner import Runner


async def _next(
    ws: Any, kind: str, where: Callable[[dict[str, Any]], bool] = lambda f: True
) -> dict[str, Any]:
    while True:
        frame: dict[str, Any] = orjson.loads(await ws.receive_text(timeout=10))
        if frame["type"] == kind and where(frame):
            return frame


async def test_stats_frames_arrive_every_second(live_server: LiveServer, client: httpx.AsyncClient) -> None:
    await submit(client, "waiting")

    async with aconnect_ws(f"{live_server.ws_url}/dashboard/ws", client) as ws:
        first = await _next(ws, "stats")
        second = await _next(ws, "stats")

    assert first["redis_ok"] is True
    assert first["kinds"]["default"]["queued"] == 1
    assert second["time"] > first["time"]
    assert second["series"][-1][0] == int(second["time"])


async def test_listed_tasks_change_as_they_run(
    live_server: LiveServer, client: httpx.AsyncClient, start_worker: Callable[..., Runner]
) -> None:
    task_id = await submit(client, "watched", duration=0.3, steps=2)

    async with aconnect_ws(f"{live_server.ws_url}/dashboard/ws", client) as ws:
        await ws.send_text('{"op": "list", "limit": 10}')
        rows = await _next(ws, "rows")
        start_worker()
        done = await _next(ws, "task", lambda f: f["state"]["status"] == "DONE")

    assert rows["mode"] == "replace"
    assert [r["task_id"] for r in rows["rows"]] == [task_id]
    assert rows["rows"][0]["kind"] == "default"
    assert done["state"]["task_id"] == task_id


async def test_new_tasks_are_pushed_on_top_of_a_live_list(
    live_server: LiveServer, client: httpx.AsyncClient
) -> None:
    async with aconnect_ws(f"{live_server.ws_url}/dashboard/ws", client) as ws:
        await ws.send_text('{"op": "list", "status": "PENDING"}')
        assert (await _next(ws, "rows"))["rows"] == []
        task_id = await submit(client, "arrives later")
        pushed = await _next(ws, "rows", lambda f: f["mode"] == "prepend")

    assert [r["task_id"] for r in pushed["rows"]] == [task_id]
    assert pushed["rows"][0]["status"] == "PENDING"


async def test_a_task_read_after_newer_ones_still_joins_the_list(
    live_server: LiveServer, client: httpx.AsyncClient, store: TaskStore
) -> None:
    """A tick reads the heads of the moving indexes until they may hold as many rows as the
    tail takes: here FAILED's three new ones, then PENDING's older one a tick later, which is
    placed among the rows rather than lost below the top one."""
    async with aconnect_ws(f"{live_server.ws_url}/dashboard/ws", client) as ws:
        await ws.send_text('{"op": "list"}')
        await _next(ws, "rows")
        await submit(client, "first")
        await _next(ws, "rows", lambda f: f["mode"] == "prepend")  # PENDING's head: read last
        older = await submit(client, "older")
        failed = [await submit(client, f"failing {i}") for i in range(3)]
        for task_id in failed:
            await store.move(Move(task_id, TaskStatus.RUNNING, new_token="t", new_attempt=True))
            await store.move(Move(task_id, TaskStatus.FAILED, {"error": "boom"}, token="t"))
        pushed: list[str] = []
        async with asyncio.timeout(10):
            while older not in pushed:
                frame = await _next(ws, "rows", lambda f: f["mode"] == "prepend")
                pushed += [row["task_id"] for row in frame["rows"]]

    assert set(failed) <= set(pushed)


async def test_timeline_answers_the_state_then_follows_the_task(
    live_server: LiveServer, client: httpx.AsyncClient, start_worker: Callable[..., Runner]
) -> None:
    task_id = await submit(client, "timeline", duration=0.2, steps=2)

    async with aconnect_ws(f"{live_server.ws_url}/dashboard/ws", client) as ws:
        await ws.send_text(orjson.dumps({"op": "timeline", "task_id": task_id}).decode())
        opened = await _next(ws, "timeline")
        start_worker()
        done = await _next(ws, "task", lambda f: f["state"]["status"] == "DONE")

    assert opened["state"]["task_id"] == task_id and opened["state"]["status"] == "PENDING"
    assert done["state"]["task_id"] == task_id


@pytest.mark.parametrize(
    "frame",
    [
        '{"op": "dance"}',
        "not json",
        "[1]",
        '{"op": "list", "status": "NAPPING"}',
        '{"op": "list", "limit": 0}',
        '{"op": "list", "kind": "no such!"}',
        '{"op": "timeline", "task_id": "0123abcd"}',
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_stays_open(
    live_server: LiveServer, client: httpx.AsyncClient, frame: str
) -> None:
    async with aconnect_ws(f"{live_server.ws_url}/dashboard/ws", client) as ws:
        await ws.send_text(frame)
        error = await _next(ws, "error")
        await ws.send_text('{"op": "list"}')
        rows = await _next(ws, "rows")

    assert error["detail"]
    assert rows["rows"] == []


async def test_with_an_api_key_the_socket_needs_it(start_server: Callable[..., LiveServer]) -> None:
    server = start_server(api_key="s3cret")

    async with httpx.AsyncClient(base_url=server.url) as client:
        page = await client.get("/dashboard")
        listing = await client.get("/tasks")
        async with aconnect_ws(f"{server.ws_url}/dashboard/ws", client) as ws:
            with pytest.raises(WebSocketDisconnect) as exc:
                await ws.receive_text(timeout=5)
        async with aconnect_ws(f"{server.ws_url}/dashboard/ws?api_key=s3cret", client) as ws:
            stats = await _next(ws, "stats")

    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert listing.status_code == 401
    assert exc.value.code == 4401
    assert stats["redis_ok"] is True


async def _subscribes(redis: Redis | RedisCluster) -> int:
    """SUBSCRIBE and SSUBSCRIBE commands Redis has run, all primaries."""
    if isinstance(redis, RedisCluster):
        await redis.initialize()
        replies = [await redis.info("commandstats", target_nodes=n) for n in redis.get_primaries()]
    else:
        replies = [await redis.info("commandstats")]
    total = 0
    for stats in replies:
        total += sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("subscribe", "ssubscribe"))
    return total


@both_topologies
async def test_tailed_rows_are_subscribed_together_then_read_and_follow_their_tasks(
    live_server: LiveServer, client: httpx.AsyncClient, redis: Redis, start_worker: Callable[..., Runner]
) -> None:
    """The tail subscribes a tick's new rows in one command a slot, reads their states after
    (so none of their events is lost), and pushes each later change of them."""
    async with aconnect_ws(f"{live_server.ws_url}/dashboard/ws", client) as ws:
        await ws.send_text('{"op": "list", "status": "PENDING"}')
        await _next(ws, "rows")
        await _next(ws, "stats")  # just after a tick: the three land between two
        before = await _subscribes(redis)
        ids = [await submit(client, f"tailed {i}", duration=0.2) for i in range(3)]
        pushed = await _next(ws, "rows", lambda f: f["mode"] == "prepend")
        subscribes = await _subscribes(redis) - before
        start_worker()
        done: set[str] = set()
        while done != set(ids):
            frame = await _next(ws, "task", lambda f: f["state"]["status"] == "DONE")
            done.add(frame["state"]["task_id"])

    assert sorted(r["task_id"] for r in pushed["rows"]) == sorted(ids)
    assert {r["status"] for r in pushed["rows"]} == {"PENDING"}
    slots = {key_slot(Keys().channel(task_id).encode()) for task_id in ids}
    assert subscribes == (len(slots) if isinstance(redis, RedisCluster) else 1)
