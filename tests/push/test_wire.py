"""What goes on the wire when the hub sends events itself: states read together, framed writes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK

from server.push.hub import Hub
from taskstore import Keys
from tests.conftest import LiveServer
from tests.factories import submit
from tests.helpers import both_topologies
from tests.push.sse import sse_events
from worker.runner import Runner

pytestmark = both_topologies

# Two states published in one script: Redis writes both to the hub's connection at once, so
# the hub reads them in one go.
PUBLISH_TWO = "redis.call(ARGV[1], KEYS[1], ARGV[2]); redis.call(ARGV[1], KEYS[1], ARGV[3])"


def _state(snapshot: dict[str, Any], seq: int, progress: float) -> bytes:
    return orjson.dumps({**snapshot, "seq": seq, "status": "RUNNING", "progress": progress})


async def test_two_states_read_together_go_out_as_the_newer_one(
    live_server: LiveServer, client: httpx.AsyncClient, redis: Redis | RedisCluster
) -> None:
    task_id = await submit(client, "superseded")
    async with client.stream("GET", f"/tasks/{task_id}/events") as response:
        events = sse_events(response)
        snapshot = (await anext(events))["data"]
        seq = snapshot["seq"]
        publish = "SPUBLISH" if isinstance(redis, RedisCluster) else "PUBLISH"
        channel = Keys().channel(task_id)
        args = [publish, _state(snapshot, seq + 1, 0.5), _state(snapshot, seq + 2, 0.9)]
        await redis.eval(PUBLISH_TWO, 1, channel, *args)  # type: ignore[misc]
        newest = (await asyncio.wait_for(anext(events), 5))["data"]

    assert (newest["seq"], newest["progress"]) == (seq + 2, 0.9)
    hub: Hub = live_server.server.config.app.state.hub
    assert hub.superseded == 1


async def test_a_compressed_websocket_gets_every_state_and_a_normal_close(
    live_server: LiveServer, client: httpx.AsyncClient, start_worker: Callable[..., Runner]
) -> None:
    # permessage-deflate frames each message with the socket's own context: the hub's frames,
    # built once for every socket, must not be written to it (server/push/framed.py).
    task_id = await submit(client, duration=0.3, steps=3)
    async with connect(f"{live_server.ws_url}/tasks/{task_id}/ws", compression="deflate") as ws:
        assert ws.protocol.extensions, "the client and uvicorn agreed on permessage-deflate"
        first = orjson.loads(await ws.recv())
        start_worker()
        states = [first]
        try:
            while True:
                states.append(orjson.loads(await ws.recv()))
        except ConnectionClosedOK as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1000

    seqs = [s["seq"] for s in states]
    assert seqs == sorted(set(seqs))
    assert states[-1]["status"] == "DONE"
    assert [s["progress"] for s in states if s["status"] == "RUNNING"][-1] > 0
