"""taskcast_client.TaskcastClient against a live server, directly and behind stream-blocking proxies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from taskcast_client import ApiError, TaskcastClient, TaskNotFound
from tests.clients.conftest import ServeBehind
from tests.clients.servers import ServedApp, StreamBlocker, StreamCutter
from tests.conftest import LiveServer
from worker.runner import Runner


@pytest.fixture
async def api(live_server: LiveServer) -> AsyncIterator[TaskcastClient]:
    async with TaskcastClient(live_server.url) as client:
        yield client


async def _follow(client: TaskcastClient, transport: Any = "auto", **params: Any) -> list[dict[str, Any]]:
    task = await client.submit(None, "hello client", params)
    return [state async for state in client.watch(task["task_id"], transport=transport)]


def _assert_one_pass(states: list[dict[str, Any]], end: str) -> None:
    seqs = [s["seq"] for s in states]
    assert seqs == sorted(set(seqs)), f"states repeated or out of order: {seqs}"
    assert [s["status"] for s in states].count(end) == 1
    assert states[-1]["status"] == end


async def test_submit_get_and_cancel(api: TaskcastClient) -> None:
    task = await api.submit(None, "hello", {"duration": 30})

    state = await api.get(task["task_id"])
    cancelled = await api.cancel(task["task_id"])

    assert task["status"] == "PENDING"
    assert state["task_id"] == task["task_id"]
    assert cancelled["status"] == "CANCELLED"
    with pytest.raises(ApiError) as exc:
        await api.cancel(task["task_id"])
    assert exc.value.status == 409


@pytest.mark.parametrize("transport", ["auto", "sse", "ws", "poll"])
async def test_watch_yields_each_state_once_and_ends_after_done(
    api: TaskcastClient, worker: Runner, transport: str
) -> None:
    states = await _follow(api, transport, duration=0.2, steps=2)

    _assert_one_pass(states, "DONE")
    assert states[-1]["result"]["echo"] == "hello client"
    assert api.transport == ("sse" if transport == "auto" else transport)


@pytest.mark.parametrize("transport", ["sse", "ws", "poll"])
async def test_watch_ends_with_the_error_of_a_failed_task(
    api: TaskcastClient, worker: Runner, transport: str
) -> None:
    states = await _follow(api, transport, fail=True)

    _assert_one_pass(states, "FAILED")
    assert "failed on purpose" in states[-1]["error"]


@pytest.mark.parametrize("transport", ["sse", "ws", "poll"])
async def test_watch_unknown_task_raises_task_not_found(api: TaskcastClient, transport: Any) -> None:
    with pytest.raises(TaskNotFound):
        async for _ in api.watch("no-such-task", transport=transport):
            pass


async def test_auto_falls_back_to_ws_when_sse_is_refused(
    sse_blocked: tuple[ServedApp, StreamBlocker], worker: Runner
) -> None:
    server, proxy = sse_blocked

    async with TaskcastClient(server.url) as client:
        states = await _follow(client, duration=0.2, steps=2)

    _assert_one_pass(states, "DONE")
    assert client.transport == "ws"
    assert proxy.seen["sse"] == 1


async def test_auto_falls_back_to_polling_when_sse_and_ws_are_blocked(
    streams_blocked: tuple[ServedApp, StreamBlocker], worker: Runner
) -> None:
    server, proxy = streams_blocked

    async with TaskcastClient(server.url) as client:
        states = await _follow(client, duration=0.2, steps=2)

    _assert_one_pass(states, "DONE")
    assert client.transport == "poll"
    assert proxy.seen["sse"] == 1
    assert proxy.seen["ws"] == 1


async def test_watch_stops_at_once_when_the_server_wants_a_key(serve_behind: ServeBehind) -> None:
    server, proxy = serve_behind(lambda app: StreamBlocker(app, sse_answer="401"))

    async with TaskcastClient(server.url) as client:
        task = await client.submit(None, "hello key")
        with pytest.raises(ApiError) as exc:
            async for _ in client.watch(task["task_id"]):
                pass

    assert exc.value.status == 401
    assert proxy.seen == {"sse": 1, "ws": 0, "poll": 0}


async def test_sse_resumes_with_last_event_id_after_a_cut(
    sse_cut: Callable[[int], tuple[ServedApp, StreamCutter]], worker: Runner
) -> None:
    server, proxy = sse_cut(1)

    async with TaskcastClient(server.url) as client:
        states = await _follow(client, "sse", duration=0.3, steps=3)

    _assert_one_pass(states, "DONE")
    assert proxy.last_event_ids == [None, *(str(state["seq"]) for state in states[:-1])]


async def test_auto_falls_back_when_the_sse_stream_keeps_ending_early(
    sse_cut: Callable[[int], tuple[ServedApp, StreamCutter]], worker: Runner
) -> None:
    server, proxy = sse_cut(0)

    async with TaskcastClient(server.url, backoff=0.01) as client:
        states = await _follow(client, duration=0.2, steps=2)

    _assert_one_pass(states, "DONE")
    assert client.transport == "ws"
    assert len(proxy.last_event_ids) == client.retries


@pytest.mark.parametrize("transport", ["sse", "ws", "poll"])
async def test_watch_sends_the_api_key_on_every_transport(
    start_server: Callable[..., LiveServer], worker: Runner, transport: Any
) -> None:
    server = start_server(api_key="s3cret")

    async with TaskcastClient(server.url, api_key="s3cret") as client:
        states = await _follow(client, transport, duration=0.1)

    _assert_one_pass(states, "DONE")


@pytest.mark.parametrize("transport", ["auto", "sse", "ws", "poll"])
async def test_watch_with_a_wrong_key_raises_401_at_once(
    start_server: Callable[..., LiveServer], transport: Any
) -> None:
    server = start_server(api_key="s3cret")
    async with TaskcastClient(server.url, api_key="s3cret") as owner:
        task_id = (await owner.submit(None, "hello key", {"duration": 30}))["task_id"]

    async with TaskcastClient(server.url, api_key="wrong") as client:
        with pytest.raises(ApiError) as exc:
            async for _ in client.watch(task_id, transport=transport):
                pass

    assert exc.value.status == 401


@pytest.mark.parametrize("transport", ["sse", "ws", "poll"])
async def test_a_client_without_the_key_watches_with_the_watch_token_on_every_transport(
    start_server: Callable[..., LiveServer], worker: Runner, transport: Any
) -> None:
    server = start_server(api_key="s3cret")
    async with TaskcastClient(server.url, api_key="s3cret") as owner:
        submitted = await owner.submit(None, "hello token", {"duration": 0.1})
    task_id, token = submitted["task_id"], submitted["watch_token"]

    async with TaskcastClient(server.url) as watcher:
        states = [s async for s in watcher.watch(task_id, transport=transport, token=token)]
        state = await watcher.get(task_id)
        with pytest.raises(ApiError) as refused:
            await watcher.cancel(task_id)

    assert owner.tokens == {task_id: token}
    _assert_one_pass(states, "DONE")
    assert state["status"] == "DONE"
    assert refused.value.status == 401
