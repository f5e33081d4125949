"""Clients that stop reading are let go: connection closed, descriptor freed, one log line each.

The API runs as its own process, so its sockets can be counted in /proc/<pid>/fd. The task is
driven through taskstore (as a worker would), one state at a time, each published only once
the well-behaved subscriber has it: that subscriber must see every state, in order.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from taskstore import Move, TaskStatus, TaskStore
from tests.helpers import wait_for
from tests.ops.stack import ApiProcess
from tests.push.sse import sse_events

SLOW_SSE = SLOW_WS = 50
MAX_STATES = 5000


@pytest.fixture
async def api(clean_redis: str, tmp_path: Path) -> AsyncIterator[ApiProcess]:
    api = ApiProcess(clean_redis, tmp_path, send_timeout="1", stream_buffer_bytes="4096", log_level="WARNING")
    await api.wait_ready()
    yield api
    api.stop()


def sockets_of(pid: int) -> int:
    fd_dir = f"/proc/{pid}/fd"
    count = 0
    for fd in os.listdir(fd_dir):
        try:
            count += os.readlink(f"{fd_dir}/{fd}").startswith("socket:")
        except OSError:
            continue  # closed meanwhile
    return count


async def never_reading(port: int, request: bytes) -> socket.socket:
    """A client that sends its request and then never reads a byte (a small receive window)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, request)
    return sock


def requests(task_id: str) -> list[bytes]:
    sse = f"GET /tasks/{task_id}/events HTTP/1.1\r\nHost: t\r\n\r\n".encode()
    ws = (
        f"GET /tasks/{task_id}/ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    return [sse] * SLOW_SSE + [ws] * SLOW_WS


def kernel_connections(port: int) -> int:
    """TCP connections the kernel keeps on the API's side of `port` (LISTEN aside), whether a
    process still owns them or not: a closed socket with unsent bytes lingers in the kernel."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        count += int(local.rsplit(":", 1)[1], 16) == port and state != "0A"
    return count


def dropped_lines(api: ApiProcess) -> list[str]:
    return [line for line in api.log().splitlines() if "dropped:" in line]


@pytest.mark.timeout(90)
async def test_clients_that_never_read_are_let_go_while_a_reader_gets_every_state(
    api: ApiProcess, store: TaskStore
) -> None:
    task_id = (await store.submit("chatty", {})).task_id
    await store.move(Move(task_id, TaskStatus.RUNNING, new_token="t", new_attempt=True))
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        async with client.stream("GET", f"/tasks/{task_id}/events") as response:
            events = sse_events(response)
            seqs = [(await anext(events))["data"]["seq"]]
            baseline = sockets_of(api.proc.pid)
            slow = [await never_reading(api.port, r) for r in requests(task_id)]
            await wait_for(
                lambda: _at_least(api.proc.pid, baseline + len(slow)), what="the slow clients' connections"
            )

            for n in range(MAX_STATES):
                await store.move(Move(task_id, TaskStatus.RUNNING, {"progress": f"{n / MAX_STATES}"}, "t"))
                seqs.append((await anext(events))["data"]["seq"])
                if n % 50 == 0 and len(dropped_lines(api)) == len(slow):
                    break
            await wait_for(lambda: _at_most(api.proc.pid, baseline), timeout=5, what="the sockets to go")
            await wait_for(lambda: _kernel_at_most(api.port, 1), timeout=5, what="the kernel's buffers to go")
            held_after_drops = sockets_of(api.proc.pid) - baseline
            await store.move(Move(task_id, TaskStatus.DONE, {"result": "1"}, "t"))
            final = [e["data"] async for e in events]
        for sock in slow:
            sock.close()

    log, lines = api.log(), dropped_lines(api)
    assert held_after_drops <= 0
    assert len(lines) == SLOW_SSE + SLOW_WS and all(task_id in line and "WARNING" in line for line in lines)
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-3000:]
    assert seqs + [d["seq"] for d in final] == list(range(seqs[0], seqs[0] + len(seqs) + 1))
    assert [d["status"] for d in final] == ["DONE"]


async def _at_least(pid: int, count: int) -> bool:
    return sockets_of(pid) >= count


async def _kernel_at_most(port: int, count: int) -> bool:
    return kernel_connections(port) <= count  # the well-behaved subscriber's


async def _at_most(pid: int, count: int) -> bool:
    return sockets_of(pid) <= count
