"""Long-polling `GET /tasks/{id}?wait=N&seq=S`, served from the hub."""

from __future__ import annotations

import asyncio

import httpx

from server.push.hub import Hub
from tests.conftest import LiveServer
from tests.factories import submit
from tests.helpers import wait_for
from worker.runner import Runner


def _hub(server: LiveServer) -> Hub:
    hub: Hub = server.server.config.app.state.hub
    return hub


async def test_long_poll_answers_with_the_change_pushed_while_it_waits(
    client: httpx.AsyncClient, live_server: LiveServer
) -> None:
    task_id = await submit(client, duration=30)
    hub = _hub(live_server)
    poll = asyncio.create_task(client.get(f"/tasks/{task_id}", params={"wait": 30, "seq": 1}))

    async def subscribed() -> bool:
        return hub.watched_count == 1

    await wait_for(subscribed, what="the long-poll to subscribe")

    await client.delete(f"/tasks/{task_id}")
    response = await poll

    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"
    assert response.headers["etag"] == f'"{response.json()["seq"]}"'
    assert response.json()["seq"] > 1


async def test_long_poll_answers_304_when_nothing_changed_in_time(client: httpx.AsyncClient) -> None:
    task_id = await submit(client)

    response = await client.get(f"/tasks/{task_id}", params={"wait": 0.2, "seq": 1})

    assert response.status_code == 304
    assert response.headers["etag"] == '"1"'


async def test_long_poll_behind_the_client_answers_at_once(client: httpx.AsyncClient) -> None:
    task_id = await submit(client)
    await client.delete(f"/tasks/{task_id}")

    response = await client.get(f"/tasks/{task_id}", params={"wait": 30, "seq": 1}, timeout=5)

    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"


async def test_long_poll_takes_the_seq_from_if_none_match(client: httpx.AsyncClient) -> None:
    task_id = await submit(client)
    await client.delete(f"/tasks/{task_id}")

    fresh = await client.get(f"/tasks/{task_id}", params={"wait": 30}, headers={"If-None-Match": '"1"'})
    same = await client.get(f"/tasks/{task_id}", params={"wait": 30}, headers={"If-None-Match": '"2"'})

    assert fresh.status_code == 200
    assert same.status_code == 304


async def test_long_poll_on_an_ended_task_does_not_wait(client: httpx.AsyncClient) -> None:
    task_id = await submit(client)
    ended = (await client.delete(f"/tasks/{task_id}")).json()["seq"]

    response = await client.get(f"/tasks/{task_id}", params={"wait": 60, "seq": ended}, timeout=5)

    assert response.status_code == 304
    assert response.headers["etag"] == f'"{ended}"'


async def test_long_poll_with_a_seq_the_task_never_had_resyncs(client: httpx.AsyncClient) -> None:
    task_id = await submit(client)

    response = await client.get(f"/tasks/{task_id}", params={"wait": 30, "seq": 99}, timeout=5)

    assert response.status_code == 200
    assert response.json()["seq"] == 1


async def test_long_poll_unknown_task_returns_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/tasks/no-such-task", params={"wait": 5, "seq": 0})

    assert response.status_code == 404


async def test_long_poll_caps_a_long_wait_instead_of_refusing_it(client: httpx.AsyncClient) -> None:
    task_id = await submit(client)

    response = await client.get(f"/tasks/{task_id}", params={"wait": 3600, "seq": 0})

    assert response.status_code == 200


async def test_long_poll_rejects_a_negative_wait(client: httpx.AsyncClient) -> None:
    task_id = await submit(client)

    response = await client.get(f"/tasks/{task_id}", params={"wait": -1})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "wait"]


async def test_long_poll_loop_follows_a_task_to_done_and_releases_the_hub(
    client: httpx.AsyncClient, live_server: LiveServer, worker: Runner
) -> None:
    task_id = await submit(client, duration=0.3, steps=3)
    seqs, status = [0], "PENDING"

    while status not in ("DONE", "FAILED"):
        response = await client.get(f"/tasks/{task_id}", params={"wait": 10, "seq": seqs[-1]})
        if response.status_code == 200:
            seqs.append(response.json()["seq"])
            status = response.json()["status"]

    assert status == "DONE"
    assert seqs == sorted(set(seqs))
    assert _hub(live_server).subscriber_count == 0


async def test_openapi_documents_wait_and_seq(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()

    params = {p["name"]: p for p in spec["paths"]["/tasks/{task_id}"]["get"]["parameters"]}

    assert "Long-poll" in params["wait"]["description"]
    assert "seq" in params["seq"]["description"]


async def test_long_poll_ignores_an_etag_that_is_not_an_ascii_seq(client: httpx.AsyncClient) -> None:
    task_id = await submit(client)

    response = await client.get(
        f"/tasks/{task_id}", params={"wait": 0.2}, headers={"If-None-Match": '"²"'.encode("latin-1")}
    )

    assert response.status_code == 200
    assert response.json()["seq"] == 1
