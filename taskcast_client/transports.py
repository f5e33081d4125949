"""The three ways to follow a task, each one connection (or one poll loop) at a time.

Each transport is an async generator of state dicts that starts after a given seq and raises:
  TaskNotFound   the API says the task is unknown or expired (404, WebSocket close 4404)
  ApiError(401)  the API wants a (different) API key (401, WebSocket close 4401)
  Refused        an answer that is not the stream asked for (403, 502, text/html, ...): this
                 transport does not work here, fall back at once
  httpx.TransportError / OSError / websockets errors: the connection failed or dropped
Ending without a terminal state means the stream was cut; the caller reconnects from the
last seq it saw.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

State = dict[str, Any]
TERMINAL = frozenset({"DONE", "FAILED", "CANCELLED"})
WS_NOT_FOUND = 4404
WS_UNAUTHORIZED = 4401
NEEDS_KEY = "the server wants an API key (--api-key, or TaskcastClient(api_key=...))"


class TaskcastClientError(Exception):
    """Base class of the client's errors."""


class TaskNotFound(TaskcastClientError):
    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id

    def __str__(self) -> str:
        return f"task {self.task_id} is unknown or expired"


class Refused(TaskcastClientError):
    """The server (or a proxy in front of it) answered, but not with what the transport needs."""

    def __init__(self, transport: str, why: str) -> None:
        super().__init__(transport, why)
        self.transport = transport
        self.why = why

    def __str__(self) -> str:
        return f"{self.transport} refused: {self.why}"


class ApiError(TaskcastClientError):
    """The API answered a request with an error status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.detail}"


class TaskFailed(TaskcastClientError):
    """`wait()` saw the task end FAILED; `state` is its final state."""

    def __init__(self, state: State) -> None:
        super().__init__(state)
        self.state = state

    def __str__(self) -> str:
        return f"task {self.state.get('task_id')} failed: {self.state.get('error')}"


class GaveUp(TaskcastClientError):
    """Every transport tried failed too often in a row."""


def is_terminal(state: State) -> bool:
    return state.get("status") in TERMINAL


def check_answer(transport: str, task_id: str, response: httpx.Response, *, stream: bool) -> None:
    """TaskNotFound on 404, ApiError on 401, Refused on any other answer that is not the 200
    (event stream when `stream`) the transport needs."""
    if response.status_code == 404:
        raise TaskNotFound(task_id)
    if response.status_code == 401:
        raise ApiError(401, NEEDS_KEY)
    if response.status_code != 200:
        raise Refused(transport, f"HTTP {response.status_code}")
    content_type = response.headers.get("content-type", "")
    wanted = "text/event-stream" if stream else "application/json"
    if not content_type.startswith(wanted):
        raise Refused(transport, f"content-type {content_type or 'missing'}, wanted {wanted}")


async def sse(
    http: httpx.AsyncClient, task_id: str, after: int, auth: dict[str, str] | None = None
) -> AsyncGenerator[State, None]:
    """`GET /tasks/{id}/events`, resuming with Last-Event-ID; `auth` replaces the client's header."""
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache", **(auth or {})}
    if after:
        headers["Last-Event-ID"] = str(after)
    async with http.stream("GET", f"/tasks/{task_id}/events", headers=headers) as response:
        if response.status_code == 204:  # we already saw the end
            return
        check_answer("sse", task_id, response, stream=True)
        async for state in parse_sse(response.aiter_lines()):
            yield state


async def parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[State]:
    """The `data:` of each event (joined across lines), decoded; comments and pings skipped."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield json.loads("\n".join(data))
            data = []
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value.removeprefix(" "))


async def websocket(
    ws_url: str, task_id: str, after: int, headers: dict[str, str]
) -> AsyncGenerator[State, None]:
    """`WS /tasks/{id}/ws?last_seq=`; the server closes with 1000 after the terminal state."""
    url = f"{ws_url}/tasks/{task_id}/ws?{urlencode({'last_seq': after})}"
    try:
        async with connect(url, additional_headers=headers, open_timeout=10, proxy=None) as ws:
            async for frame in ws:
                yield json.loads(frame)
    except InvalidStatus as e:
        if e.response.status_code == 401:
            raise ApiError(401, NEEDS_KEY) from e
        raise Refused("ws", f"handshake answered HTTP {e.response.status_code}") from e
    except ConnectionClosed as e:
        code = e.rcvd.code if e.rcvd is not None else None
        if code == WS_NOT_FOUND:
            raise TaskNotFound(task_id) from e
        if code == WS_UNAUTHORIZED:
            raise ApiError(401, NEEDS_KEY) from e
        raise


async def poll(
    http: httpx.AsyncClient,
    task_id: str,
    after: int,
    *,
    wait: float,
    idle: float,
    auth: dict[str, str] | None = None,
) -> AsyncGenerator[State, None]:
    """Long-poll `GET /tasks/{id}?wait=&seq=` until a terminal state.

    An answer with nothing new that comes back early (a server or proxy that ignores `wait`)
    is followed by a pause of `idle` seconds, so an old server is polled, not hammered.
    """
    seq = after
    while True:
        started = time.monotonic()
        state = await _poll_once(http, task_id, seq, wait, auth or {})
        if state is not None and int(state["seq"]) > seq:
            seq = int(state["seq"])
            yield state
            if is_terminal(state):
                return
        elif time.monotonic() - started < wait / 2:
            await asyncio.sleep(idle)


async def _poll_once(
    http: httpx.AsyncClient, task_id: str, seq: int, wait: float, auth: dict[str, str]
) -> State | None:
    params = {"wait": str(wait), "seq": str(seq)}
    headers = {"If-None-Match": f'"{seq}"', **auth} if seq else auth
    response = await http.get(f"/tasks/{task_id}", params=params, headers=headers, timeout=wait + 10)
    if response.status_code == 304:
        return None
    check_answer("poll", task_id, response, stream=False)
    state: State = response.json()
    return state
