"""An async Python client for taskcast that follows a task over whatever the network allows.

    async with TaskcastClient("http://127.0.0.1:8000") as client:
        task = await client.submit("hello", duration=2, steps=4)
        async for state in client.watch(task["task_id"]):   # "auto": SSE, else WS, else poll
            print(state["seq"], state["status"])

watch("auto"):  sse ──refused / dropped `retries` times──▶ ws ──same──▶ poll (long-poll, backoff)
Watching (and get) uses the task's watch token when the client has one (from its own submit,
or `watch(id, token=...)` with one your backend minted); the API key only submits and cancels.
Every transport resumes after the last seq seen (Last-Event-ID, ?last_seq=, ?seq=), and the
client drops any state it already yielded, so a fallback never repeats a state or loses the end.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from websockets.exceptions import WebSocketException

from taskcast_client import transports
from taskcast_client.transports import (
    ApiError,
    GaveUp,
    Refused,
    State,
    TaskcastClientError,
    TaskNotFound,
    is_terminal,
)

__all__ = ["ApiError", "GaveUp", "TaskNotFound", "TaskcastClient", "TaskcastClientError", "Transport"]

log = logging.getLogger("taskcast.client")

Transport = Literal["auto", "sse", "ws", "poll"]
CHAIN: tuple[str, ...] = ("sse", "ws", "poll")
# A dropped or failed connection: reconnect (with backoff), and fall back if it keeps happening.
DROPS = (httpx.TransportError, WebSocketException, OSError, TimeoutError, ValueError)


@dataclass
class _Cursor:
    seq: int = 0
    done: bool = False


class TaskcastClient:
    """Submit, read, cancel and watch tasks of one taskcast API."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        stream_timeout: float = 60.0,
        poll_wait: float = 30.0,
        retries: int = 3,
        give_up_after: int = 10,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.poll_wait = poll_wait
        self.retries = retries
        self.give_up_after = give_up_after
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.transport: str | None = None  # the transport that delivered the last state
        self.tokens: dict[str, str] = {}  # task id -> watch token, from submit or watch(token=)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=self.headers,
            timeout=httpx.Timeout(timeout, read=stream_timeout),
            trust_env=False,
        )

    async def __aenter__(self) -> TaskcastClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def ws_url(self) -> str:
        return "ws" + self.base_url.removeprefix("http")

    # -- plain requests --------------------------------------------------------------------

    async def submit(self, prompt: str, **params: Any) -> State:
        """POST /tasks: `{"task_id", "status", "cached", ...}` (a cache hit is already DONE)."""
        response = await self._http.post("/tasks", json={"prompt": prompt, "params": params})
        state = _json(response, task_id=None)
        if state.get("watch_token"):
            self.tokens[state["task_id"]] = state["watch_token"]
        return state

    async def get(self, task_id: str) -> State:
        """GET /tasks/{id}: the current state; TaskNotFound when unknown or expired."""
        response = await self._http.get(f"/tasks/{task_id}", headers=self._auth(task_id))
        return _json(response, task_id=task_id)

    async def cancel(self, task_id: str) -> State:
        """DELETE /tasks/{id}: the CANCELLED state; ApiError(409) when the task already ended."""
        return _json(await self._http.delete(f"/tasks/{task_id}"), task_id=task_id)

    # -- watching ------------------------------------------------------------------------

    async def watch(
        self, task_id: str, transport: Transport = "auto", *, token: str | None = None
    ) -> AsyncIterator[State]:
        """Each new state of the task, in seq order; ends after the terminal one.

        `token`: a watch token for the task (else the one from submit, else the API key).
        Raises TaskNotFound, or GaveUp when every transport tried keeps failing.
        """
        if transport not in ("auto", *CHAIN):
            raise ValueError(f"transport must be auto, sse, ws or poll, got {transport!r}")
        if token:
            self.tokens[task_id] = token
        chain = CHAIN if transport == "auto" else (transport,)
        cursor = _Cursor()
        for index, name in enumerate(chain):
            last = index == len(chain) - 1
            async with aclosing(self._follow(name, task_id, cursor, last=last)) as states:
                async for state in states:
                    yield state
            if cursor.done:
                return
            if not last:
                log.warning("%s does not work here; falling back to %s", name, chain[index + 1])
        raise GaveUp(f"could not follow task {task_id} over {', '.join(chain)}")

    async def _follow(
        self, name: str, task_id: str, cursor: _Cursor, *, last: bool
    ) -> AsyncGenerator[State, None]:
        """One transport, reconnecting after drops; returns when done, refused or failing."""
        limit = self.give_up_after if last else self.retries
        failures = 0
        while failures < limit:
            progressed = False
            try:
                async with aclosing(self._open(name, task_id, cursor.seq)) as states:
                    async for state in states:
                        if int(state["seq"]) <= cursor.seq:
                            continue
                        cursor.seq, progressed, self.transport = int(state["seq"]), True, name
                        yield state
                        if is_terminal(state):
                            cursor.done = True
                            return
            except Refused as e:
                log.warning("%s", e)
                if not last:
                    return
            except DROPS as e:
                log.info("%s connection failed or dropped: %r", name, e)
            failures = 0 if progressed else failures + 1
            await asyncio.sleep(self._delay(failures))

    def _auth(self, task_id: str) -> dict[str, str]:
        """The task's watch token as the Authorization header, else the API key's (if any)."""
        token = self.tokens.get(task_id)
        return {"Authorization": f"Bearer {token}"} if token else self.headers

    def _open(self, name: str, task_id: str, after: int) -> AsyncGenerator[State, None]:
        auth = self._auth(task_id)
        if name == "sse":
            return transports.sse(self._http, task_id, after, auth)
        if name == "ws":
            return transports.websocket(self.ws_url, task_id, after, auth)
        wait, idle = self.poll_wait, self.max_backoff
        return transports.poll(self._http, task_id, after, wait=wait, idle=idle, auth=auth)

    def _delay(self, failures: int) -> float:
        if failures == 0:
            return 0.0
        base = min(self.max_backoff, self.backoff * 2.0 ** (failures - 1))
        return base * (0.5 + random.random() / 2)


def _json(response: httpx.Response, *, task_id: str | None) -> State:
    if response.status_code == 404 and task_id is not None:
        raise TaskNotFound(task_id)
    if response.status_code >= 400:
        try:
            detail = str(response.json().get("detail", response.text))
        except ValueError:
            detail = response.text[:200]
        raise ApiError(response.status_code, detail)
    state: State = response.json()
    return state
