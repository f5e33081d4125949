from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import httpx
import orjson
import pytest
from httpx_ws import WebSocketDisconnect, aconnect_ws
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from taskstore import Keys
from tests.conftest import LiveServer
from tests.factories import submit
from tests.helpers import RedisProcess, both_topologies, free_port, spawn_api, wait_for
from tests.push.sse import collect, sse_events
from worker.runner import Runner


async def _numsub(redis: Redis | RedisCluster, task_ids: list[str]) -> int:
    channels = [Keys().channel(t) for t in task_ids]
    if isinstance(redis, RedisCluster):  # shard channels live on the primary of their slot
        await redis.initialize()
        total = 0
        for channel in channels:
            node = redis.get_node_from_key(channel)
            reply = await redis.execute_command("PUBSUB", "SHARDNUMSUB", channel, target_nodes=node)
            total += int(reply[1])
        return total
    counts = await redis.pubsub_numsub(*channels)
    return sum(int(n) for _, n in counts)


async def _clients(redis: Redis | RedisCluster) -> list[list[dict[str, str]]]:
    """CLIENT LIST of each primary (the one node of a single Redis)."""
    if isinstance(redis, RedisCluster):
        await redis.initialize()
        return [await redis.client_list(target_nodes=node) for node in redis.get_primaries()]
    return [await redis.client_list()]


async def test_departed_sse_and_ws_clients_leave_no_subscription(
    live_server: LiveServer, client: httpx.AsyncClient, redis: Redis
) -> None:
    ids = [await submit(client, f"leave {i}") for i in range(4)]
    streams = []  # held, so that garbage collection does not close them early
    async with AsyncExitStack() as stack:
        for task_id in ids[:2]:
            response = await stack.enter_async_context(client.stream("GET", f"/tasks/{task_id}/events"))
            streams.append(sse_events(response))
            await anext(streams[-1])
        for task_id in ids[2:]:
            ws = await stack.enter_async_context(aconnect_ws(f"{live_server.url}/tasks/{task_id}/ws", client))
            await ws.receive_text()
        assert await _numsub(redis, ids) == 4

    await wait_for(lambda: _gone(redis, ids), what="PUBSUB NUMSUB back to 0")


async def _gone(redis: Redis, ids: list[str]) -> bool:
    return await _numsub(redis, ids) == 0


async def test_subscriber_that_never_reads_does_not_delay_another(
    live_server: LiveServer, client: httpx.AsyncClient, start_worker: Callable[..., Runner]
) -> None:
    task_id = await submit(client, duration=0.3, steps=30)
    async with aconnect_ws(f"{live_server.url}/tasks/{task_id}/ws", client):
        start_worker()  # the socket above is never read

        events = await asyncio.wait_for(collect(client, task_id), 10)

    assert events[-1]["data"]["status"] == "DONE"


@pytest.mark.timeout(90)
async def test_subscriber_gets_the_terminal_event_across_a_redis_restart(
    own_redis: RedisProcess, start_server: Callable[..., LiveServer], start_worker: Callable[..., Runner]
) -> None:
    server = start_server(redis_url=own_redis.url)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        task_id = await submit(client, duration=1.0, steps=2)
        async with client.stream("GET", f"/tasks/{task_id}/events") as response:
            events = sse_events(response)
            assert (await anext(events))["data"]["status"] == "PENDING"
            own_redis.restart()
            start_worker(redis_url=own_redis.url)
            rest = [e async for e in events]

    assert rest[-1]["data"]["status"] == "DONE"


@pytest.mark.timeout(120)
@both_topologies
async def test_500_sse_subscribers_share_a_handful_of_redis_connections(
    live_server: LiveServer, client: httpx.AsyncClient, redis: Redis
) -> None:
    ids = [await submit(client, f"many {i}") for i in range(50)]
    limits = httpx.Limits(max_connections=600)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30, limits=limits) as many:
        async with AsyncExitStack() as stack:
            streams = []

            async def open_one(i: int) -> None:
                response = await stack.enter_async_context(many.stream("GET", f"/tasks/{ids[i % 50]}/events"))
                streams.append(sse_events(response))
                await anext(streams[-1])

            await asyncio.gather(*(open_one(i) for i in range(500)))
            per_node = await _clients(redis)
            numsub = await _numsub(redis, ids)

    assert numsub == 50
    for clients in per_node:  # on a cluster: one pub/sub connection per primary, a small pool
        assert sum(c["name"] == "taskcast-api-hub" for c in clients) == 1
        assert len(clients) <= 8, [(c["name"], c["cmd"]) for c in clients]


@pytest.mark.timeout(60)
async def test_ctrl_c_ends_open_streams_and_the_process_promptly(clean_redis: str) -> None:
    port = free_port()
    api = spawn_api(clean_redis, port)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            await wait_for(lambda: _up(client), what="the API to answer")
            sse_task, ws_task = await submit(client, "sse"), await submit(client, "ws")
            async with client.stream("GET", f"/tasks/{sse_task}/events") as response:
                events = sse_events(response)
                await anext(events)
                async with aconnect_ws(f"{url}/tasks/{ws_task}/ws", client) as ws:
                    await ws.receive_text()

                    api.send_signal(signal.SIGINT)

                    with pytest.raises(WebSocketDisconnect):
                        await asyncio.wait_for(ws.receive_text(), 10)
                rest = await asyncio.wait_for(_drain(events), 10)
        code = await asyncio.to_thread(api.wait, 10)
    finally:
        api.kill()

    assert rest == [] and code == 0


async def _up(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/healthz")).status_code == 200
    except httpx.TransportError:
        return False


async def _drain(events: AsyncIterator[object]) -> list[object]:
    return [e async for e in events]


async def test_hub_resync_pushes_a_change_that_pub_sub_missed(
    start_server: Callable[..., LiveServer], redis: Redis
) -> None:
    server = start_server(hub_resync_seconds=0.2)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        task_id = await submit(client)
        async with client.stream("GET", f"/tasks/{task_id}/events") as response:
            events = sse_events(response)
            await anext(events)
            key = Keys().task(task_id)
            # A state change written without its publish: only a resync can deliver it.
            await redis.hset(key, mapping={"status": "DONE", "seq": 5, "result": orjson.dumps({"x": 1})})

            final = await asyncio.wait_for(anext(events), 5)

    assert final["data"]["status"] == "DONE" and final["data"]["seq"] == 5
