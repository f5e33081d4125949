from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from httpx_ws import WebSocketDisconnect, aconnect_ws

from tests.conftest import LiveServer
from tests.factories import submit
from tests.helpers import both_topologies
from tests.push.sse import collect, sse_events
from worker.runner import Runner

pytestmark = both_topologies


async def test_stream_shows_the_whole_life_in_seq_order_then_closes(
    client: httpx.AsyncClient, start_worker: Callable[..., Runner]
) -> None:
    task_id = await submit(client, duration=0.2, steps=2)
    start_worker()

    events = await collect(client, task_id)

    data = [e["data"] for e in events]
    seqs = [d["seq"] for d in data]
    assert seqs == sorted(set(seqs)) and seqs == [int(e["id"]) for e in events]
    assert data[-1]["status"] == "DONE" and data[-1]["result"]["echo"] == "hello world"
    assert {"RUNNING"} <= {d["status"] for d in data[:-1]}
    assert all(e["event"] == "task" for e in events)


async def test_stream_headers_disable_caching_and_proxy_buffering(client: httpx.AsyncClient) -> None:
    task_id = await submit(client)

    async with client.stream("GET", f"/tasks/{task_id}/events") as response:
        headers = response.headers

    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-cache"
    assert headers["x-accel-buffering"] == "no"


async def test_late_subscriber_gets_the_terminal_event_at_once(
    client: httpx.AsyncClient, start_worker: Callable[..., Runner]
) -> None:
    task_id = await submit(client)
    start_worker()
    await collect(client, task_id)

    events = await collect(client, task_id)

    assert [e["data"]["status"] for e in events] == ["DONE"]


async def test_last_event_id_resume_repeats_nothing_and_ends_terminal(
    client: httpx.AsyncClient, start_worker: Callable[..., Runner]
) -> None:
    task_id = await submit(client, duration=0.3, steps=3)
    start_worker()
    async with client.stream("GET", f"/tasks/{task_id}/events") as response:
        first = await anext(sse_events(response))

    rest = await collect(client, task_id, **{"Last-Event-ID": first["id"]})

    seqs = [int(e["id"]) for e in rest]
    assert all(seq > int(first["id"]) for seq in seqs)
    assert seqs == sorted(set(seqs))
    assert rest[-1]["data"]["status"] == "DONE"


async def test_client_that_saw_the_end_gets_204(
    client: httpx.AsyncClient, start_worker: Callable[..., Runner]
) -> None:
    task_id = await submit(client)
    start_worker()
    last = (await collect(client, task_id))[-1]

    by_header = await client.get(f"/tasks/{task_id}/events", headers={"Last-Event-ID": last["id"]})
    by_query = await client.get(f"/tasks/{task_id}/events", params={"last_event_id": last["id"]})

    assert by_header.status_code == 204 and by_query.status_code == 204


async def test_unknown_task_is_404_before_any_stream(client: httpx.AsyncClient) -> None:
    response = await client.get("/tasks/nope/events")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"


async def test_200_racing_tasks_each_end_with_their_terminal_event(
    client: httpx.AsyncClient, start_worker: Callable[..., Runner]
) -> None:
    start_worker(max_concurrency=50)

    async def submit_and_watch(i: int) -> str:
        task_id = await submit(client, f"race {i}")
        events = await collect(client, task_id)
        return str(events[-1]["data"]["status"])

    finals = await asyncio.wait_for(asyncio.gather(*(submit_and_watch(i) for i in range(200))), 45)

    assert finals == ["DONE"] * 200


async def test_progress_is_pushed_while_the_task_runs(
    live_server: LiveServer, start_worker: Callable[..., Runner]
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as client:
        task_id = await submit(client, duration=0.3, steps=3)
        start_worker()

        events = await collect(client, task_id)

    # A subscriber holds one unsent state per task, so DONE may supersede the last RUNNING
    # state before the client reads it; the final progress is guaranteed on the terminal event.
    progress = [e["data"]["progress"] for e in events if e["data"]["status"] == "RUNNING"]
    reported = [p for p in progress if p is not None]
    assert reported == sorted(reported) and 0 < reported[0] < 1
    assert (events[-1]["data"]["status"], events[-1]["data"]["progress"]) == ("DONE", 1.0)


async def test_last_event_id_that_is_not_an_ascii_seq_counts_as_none(client: httpx.AsyncClient) -> None:
    task_id = await submit(client)
    await client.delete(f"/tasks/{task_id}")

    superscript = await client.get(
        f"/tasks/{task_id}/events", headers={"Last-Event-ID": "²".encode("latin-1")}
    )
    huge = await client.get(f"/tasks/{task_id}/events", params={"last_event_id": "9" * 5000})

    assert (superscript.status_code, huge.status_code) == (200, 200)
    assert "CANCELLED" in superscript.text and "CANCELLED" in huge.text


async def test_streams_past_the_process_limit_are_refused_with_503_and_1013(
    start_server: Callable[..., LiveServer],
) -> None:
    server = start_server(max_streams=1)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        task_id = await submit(client)
        async with client.stream("GET", f"/tasks/{task_id}/events") as first:
            events = sse_events(first)
            await anext(events)

            refused = await client.get(f"/tasks/{task_id}/events")
            async with aconnect_ws(f"{server.url}/tasks/{task_id}/ws", client) as ws:
                with pytest.raises(WebSocketDisconnect) as closed:
                    await ws.receive_text()

    assert refused.status_code == 503 and "retry-after" in refused.headers
    assert closed.value.code == 1013
