"""The client's blocking API, for code without an event loop (scripts, WSGI apps, Celery tasks).

    with SyncTaskcastClient("http://127.0.0.1:8000") as client:
        task = client.submit("summary", "hello", {"duration": 2})
        for state in client.watch(task["task_id"]):
            print(state["status"])
        final = client.wait(task["task_id"])

Each call runs the async client's coroutine on this object's own event loop (asyncio.Runner),
so the connections it keeps are reused between calls. Do not call it from inside a running loop:
use TaskcastClient there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Any

from taskcast_client.client import TaskcastClient, Transport
from taskcast_client.transports import State


class SyncTaskcastClient:
    """TaskcastClient's submit, get, cancel, wait and watch, blocking."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", **options: Any) -> None:
        self._loop = asyncio.Runner()
        self._client = TaskcastClient(base_url, **options)

    def __enter__(self) -> SyncTaskcastClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._loop.run(self._client.aclose())
        self._loop.close()

    @property
    def transport(self) -> str | None:
        """The transport that delivered the last state watched."""
        return self._client.transport

    def submit(
        self,
        kind: str | None,
        prompt: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        delay: float | None = None,
    ) -> State:
        """See TaskcastClient.submit."""
        submitting = self._client.submit(kind, prompt, params, idempotency_key=idempotency_key, delay=delay)
        return self._loop.run(submitting)

    def get(self, task_id: str) -> State:
        return self._loop.run(self._client.get(task_id))

    def cancel(self, task_id: str) -> State:
        return self._loop.run(self._client.cancel(task_id))

    def wait(self, task_id: str, transport: Transport = "auto", *, token: str | None = None) -> State:
        """The final state, DONE or CANCELLED; TaskFailed on FAILED."""
        return self._loop.run(self._client.wait(task_id, transport, token=token))

    def watch(
        self, task_id: str, transport: Transport = "auto", *, token: str | None = None
    ) -> Iterator[State]:
        """Each new state of the task, in seq order, until the terminal one."""
        states = self._client.watch(task_id, transport, token=token)
        try:
            while True:
                try:
                    yield self._loop.run(anext(states))
                except StopAsyncIteration:
                    return
        finally:
            self._loop.run(states.aclose())
