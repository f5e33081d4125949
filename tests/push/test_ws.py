from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from httpx_ws import WebSocketDisconnect, aconnect_ws
from redis.asyncio import Redis

from tests.conftest import LiveServer
from tests.factories import submit
from tests.helpers import both_topologies
from worker.runner import Runner

pytestmark = both_topologies


async def _frames_until_close(ws: Any) -> list[dict[str, Any]]:
    frames = []
    with pytest.raises(WebSocketDisconnect) as exc:
        while True:
            frames.append(orjson.loads(await ws.receive_text()))
    assert exc.value.code == 1000
    return frames


async def test_task_socket_sends_events_and_closes_normally_after_the_end(
    live_server: LiveServer, client: httpx.AsyncClient, start_worker: Callable[..., Runner]
) -> None:
    task_id = await submit(client, duration=0.1, steps=2)
    start_worker()

    async with aconnect_ws(f"{live_server.url}/tasks/{task_id}/ws", client) as ws:
        frames = await _frames_until_close(ws)

    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(set(seqs))
    assert frames[-1]["status"] == "DONE"


async def test_task_socket_for_unknown_task_closes_with_4404(
    live_server: LiveServer, client: httpx.AsyncClient
) -> None:
    async with aconnect_ws(f"{live_server.url}/tasks/nope/ws", client) as ws:
        with pytest.raises(WebSocketDisconnect) as exc:
            await ws.receive_text()

    assert exc.value.code == 4404
    assert "nope" in (exc.value.reason or "")


async def _until(ws: Any, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    frames = []
    while not frames or not predicate(frames[-1]):
        frames.append(orjson.loads(await ws.receive_text()))
    return frames


async def test_multiplexed_socket_watches_many_tasks(
    live_server: LiveServer, client: httpx.AsyncClient, start_worker: Callable[..., Runner]
) -> None:
    ids = [await submit(client, f"multi {i}", duration=0.05) for i in range(5)]
    start_worker()

    async with aconnect_ws(f"{live_server.url}/ws", client) as ws:
        for task_id in ids:
            await ws.send_text(orjson.dumps({"op": "subscribe", "task_id": task_id}).decode())
        done: set[str] = set()
        while done != set(ids):
            frame = orjson.loads(await ws.receive_text())
            if frame.get("status") == "DONE":
                done.add(frame["task_id"])

    assert done == set(ids)


async def test_bad_frames_get_error_frames_and_the_socket_stays_usable(
    live_server: LiveServer, client: httpx.AsyncClient, start_worker: Callable[..., Runner]
) -> None:
    task_id = await submit(client)
    start_worker()

    async with aconnect_ws(f"{live_server.url}/ws", client) as ws:
        errors = []
        for bad in [
            "not json",
            "[1, 2]",
            '{"op": "dance"}',
            '{"op": "subscribe"}',
            '{"op": "subscribe", "task_id": "zz"}',
        ]:
            await ws.send_text(bad)
            errors.append(orjson.loads(await ws.receive_text()))
        await ws.send_text(orjson.dumps({"op": "subscribe", "task_id": task_id}).decode())
        frames = await _until(ws, lambda f: f.get("status") == "DONE")

    assert [e["op"] for e in errors] == ["error"] * 5
    assert errors[-1]["code"] == 404
    assert {"op": "subscribed", "task_id": task_id} in frames


async def test_unsubscribe_stops_the_events_of_that_task(
    live_server: LiveServer, client: httpx.AsyncClient
) -> None:
    task_id = await submit(client)

    async with aconnect_ws(f"{live_server.url}/ws", client) as ws:
        await ws.send_text(orjson.dumps({"op": "subscribe", "task_id": task_id}).decode())
        await _until(ws, lambda f: f.get("op") == "subscribed")
        await ws.send_text(orjson.dumps({"op": "unsubscribe", "task_id": task_id}).decode())
        frames = await _until(ws, lambda f: f.get("op") == "unsubscribed")

    assert all(f.get("task_id") == task_id for f in frames)


async def test_subscriptions_per_socket_are_capped(
    start_server: Callable[..., LiveServer],
) -> None:
    server = start_server(max_subscriptions_per_socket=2)
    async with httpx.AsyncClient(base_url=server.url) as client:
        ids = [await submit(client, f"cap {i}") for i in range(3)]
        async with aconnect_ws(f"{server.url}/ws", client) as ws:
            answers = []
            for task_id in ids:
                await ws.send_text(orjson.dumps({"op": "subscribe", "task_id": task_id}).decode())
                answers.append(await _until(ws, lambda f: "op" in f))

    assert [a[-1]["op"] for a in answers] == ["subscribed", "subscribed", "error"]
    assert "limit" in answers[-1][-1]["error"]


@pytest.mark.parametrize("last_seq", ["²", "9" * 5000])
async def test_last_seq_that_is_not_an_ascii_seq_counts_as_none(
    live_server: LiveServer, client: httpx.AsyncClient, last_seq: str
) -> None:
    task_id = await submit(client)

    async with aconnect_ws(f"{live_server.url}/ws", client) as ws:
        await ws.send_text(
            orjson.dumps({"op": "subscribe", "task_id": task_id, "last_seq": last_seq}).decode()
        )
        multiplexed = await _until(ws, lambda f: f.get("task_id") == task_id and "status" in f)
    async with aconnect_ws(f"{live_server.url}/tasks/{task_id}/ws?last_seq={last_seq}", client) as ws:
        single = orjson.loads(await ws.receive_text())

    assert multiplexed[0] == {"op": "subscribed", "task_id": task_id}
    assert multiplexed[-1]["status"] == single["status"] == "PENDING"


async def test_binary_frame_gets_an_error_frame_and_the_socket_stays_usable(
    live_server: LiveServer, client: httpx.AsyncClient
) -> None:
    task_id = await submit(client)
    subscribe = {"op": "subscribe", "task_id": task_id}

    async with aconnect_ws(f"{live_server.url}/ws", client) as ws:
        await ws.send_bytes(orjson.dumps(subscribe))
        error = orjson.loads(await ws.receive_text())
        await ws.send_text(orjson.dumps(subscribe).decode())
        frames = await _until(ws, lambda f: "status" in f)

    assert error["op"] == "error" and "binary" in error["error"]
    assert frames[0] == {"op": "subscribed", "task_id": task_id}
    assert frames[-1]["status"] == "PENDING"


async def test_binary_frame_on_a_task_socket_is_ignored(
    live_server: LiveServer, client: httpx.AsyncClient
) -> None:
    task_id = await submit(client)

    async with aconnect_ws(f"{live_server.url}/tasks/{task_id}/ws", client) as ws:
        first = orjson.loads(await ws.receive_text())
        await ws.send_bytes(b"\x00\xff")
        await client.delete(f"/tasks/{task_id}")
        rest = await _frames_until_close(ws)

    assert [first["status"], rest[-1]["status"]] == ["PENDING", "CANCELLED"]


async def test_last_seq_the_task_never_had_resyncs_from_the_snapshot(
    live_server: LiveServer, client: httpx.AsyncClient
) -> None:
    task_id = await submit(client)  # at seq 1: a client naming seq 5 saw a state that is gone

    async with aconnect_ws(f"{live_server.url}/ws", client) as ws:
        await ws.send_text(orjson.dumps({"op": "subscribe", "task_id": task_id, "last_seq": 5}).decode())
        multiplexed = await _until(ws, lambda f: "status" in f)
    async with aconnect_ws(f"{live_server.url}/tasks/{task_id}/ws?last_seq=5", client) as ws:
        single = orjson.loads(await ws.receive_text())

    assert multiplexed[-1]["status"] == single["status"] == "PENDING"


async def test_task_socket_closes_at_once_when_the_client_saw_the_end(
    live_server: LiveServer, client: httpx.AsyncClient
) -> None:
    task_id = await submit(client)
    seq = (await client.delete(f"/tasks/{task_id}")).json()["seq"]

    async with aconnect_ws(f"{live_server.url}/tasks/{task_id}/ws?last_seq={seq}", client) as ws:
        frames = await _frames_until_close(ws)

    assert frames == []


async def test_subscribe_to_an_end_the_client_saw_takes_no_subscription_slot(
    start_server: Callable[..., LiveServer],
) -> None:
    server = start_server(max_subscriptions_per_socket=1)
    async with httpx.AsyncClient(base_url=server.url) as client:
        ended, other = await submit(client, "ended"), await submit(client, "other")
        seq = (await client.delete(f"/tasks/{ended}")).json()["seq"]
        async with aconnect_ws(f"{server.url}/ws", client) as ws:
            await ws.send_text(orjson.dumps({"op": "subscribe", "task_id": ended, "last_seq": seq}).decode())
            first = await _until(ws, lambda f: "op" in f)
            await ws.send_text(orjson.dumps({"op": "subscribe", "task_id": other}).decode())
            second = await _until(ws, lambda f: "op" in f)

    assert first == [{"op": "subscribed", "task_id": ended}]
    assert second == [{"op": "subscribed", "task_id": other}]


async def test_error_frames_echo_a_bounded_part_of_what_the_client_sent(
    live_server: LiveServer, client: httpx.AsyncClient, redis: Redis
) -> None:
    huge = "b" * 500_000
    keys_before = await redis.dbsize()

    async with aconnect_ws(f"{live_server.url}/ws", client) as ws:
        answers = []
        for frame in [
            {"op": "subscribe", "task_id": huge},
            {"op": "unsubscribe", "task_id": huge},
            {"op": huge, "task_id": "x"},
            {"op": "subscribe", "task_id": [huge]},
        ]:
            await ws.send_text(orjson.dumps(frame).decode())
            answers.append(await ws.receive_text())

    decoded = [orjson.loads(a) for a in answers]
    assert [d["op"] for d in decoded] == ["error", "unsubscribed", "error", "error"]
    assert decoded[0]["code"] == 404 and "(500000 characters)" in decoded[0]["error"]
    assert max(len(a) for a in answers) < 1000
    assert await redis.dbsize() == keys_before


async def test_task_socket_of_a_long_unknown_id_closes_4404(
    live_server: LiveServer, client: httpx.AsyncClient
) -> None:
    async with aconnect_ws(f"{live_server.url}/tasks/{'é' * 100}/ws", client) as ws:
        with pytest.raises(WebSocketDisconnect) as exc:  # its close reason once failed the close
            await ws.receive_text()

    assert exc.value.code == 4404
    assert (exc.value.reason or "").startswith("task éé") and len((exc.value.reason or "").encode()) <= 123
