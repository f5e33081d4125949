"""An async Python client for taskcast that follows a task over whatever the network allows.

    async with TaskcastClient("http://127.0.0.1:8000") as client:
        task = await client.submit("summary", "hello", {"duration": 2}, delay=5)
        async for state in client.watch(task["task_id"]):   # "auto": SSE, else WS, else poll
            print(state["seq"], state["status"])
        final = await client.wait(task["task_id"])          # DONE or CANCELLED; raises on FAILED

submit() sends an Idempotency-Key (a new one per call unless given) with every try, so its
retries after a lost answer or a 5xx never make a second task. taskcast_client.sync has the same
API for code without an event loop.

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
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from websockets.exceptions import WebSocketException

from taskcast_client import transports
from taskcast_client.posting import json_answer, new_key, post_task, task_body
from taskcast_client.transports import (
    ApiError,
    GaveUp,
    Refused,
    State,
    TaskcastClientError,
    TaskFailed,
    TaskNotFound,
    is_terminal,
)

__all__ = [
    "ApiError",
    "GaveUp",
    "TaskFailed",
    "TaskNotFound",
    "TaskcastClient",
    "TaskcastClientError",
    "Transport",
]

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

    async def submit(
        self,
        kind: str | None,
        prompt: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        delay: float | None = None,
    ) -> State:
        """POST /tasks: `{"task_id", "status", "cached", ...}` (a cache hit is already DONE).

        `kind` None is the default kind. Retried (`retries` times) after no answer, 409, 429 or
        5xx, always with one Idempotency-Key: `idempotency_key`, or a new one for this call.
        A watch token in the answer is kept for watching that task.
        """
        body = task_body(kind, prompt, params, delay)
        key = idempotency_key or new_key()
        state = await post_task(self._http, body, key, retries=self.retries, backoff=self.backoff)
        if state.get("watch_token"):
            self.tokens[state["task_id"]] = state["watch_token"]
        return state

    async def get(self, task_id: str) -> State:
        """GET /tasks/{id}: the current state; TaskNotFound when unknown or expired."""
        response = await self._http.get(f"/tasks/{task_id}", headers=self._auth(task_id))
        return json_answer(response, task_id=task_id)

    async def cancel(self, task_id: str) -> State:
        """DELETE /tasks/{id}: the CANCELLED state; ApiError(409) when the task already ended."""
        return json_answer(await self._http.delete(f"/tasks/{task_id}"), task_id=task_id)

    # -- watching ------------------------------------------------------------------------

    async def wait(self, task_id: str, transport: Transport = "auto", *, token: str | None = None) -> State:
        """The task's final state, DONE or CANCELLED; TaskFailed (with the state) on FAILED."""
        final: State = {}
        async with aclosing(self.watch(task_id, transport, token=token)) as states:
            async for state in states:
                final = state
        if final.get("status") == "FAILED":
            raise TaskFailed(final)
        return final

    async def watch(
        self, task_id: str, transport: Transport = "auto", *, token: str | None = None
    ) -> AsyncGenerator[State, None]:
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
