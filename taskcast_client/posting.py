"""POST /tasks with retries that are safe: every try of one submit carries one Idempotency-Key,
so a retry after a lost answer gets the task the first try made, never a second one.

    try ──answer──▶ 2xx: done · 4xx: ApiError (422 names the field) · 409/429/5xx: retry
        └─no answer (connection refused, reset, timeout)─▶ retry
    retry: after Retry-After when the server sent one, else backoff with jitter; at most `retries`
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from typing import Any

import httpx

from taskcast_client.transports import ApiError, State, TaskNotFound

log = logging.getLogger("taskcast.client")

# 409: the first request with this key is still in progress; 429/5xx: the server or a proxy
# could not answer now. Any other status is the answer.
RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0


def new_key() -> str:
    return str(uuid.uuid4())


def task_body(kind: str | None, prompt: str, params: Any, delay: float | None) -> dict[str, Any]:
    """The JSON body of POST /tasks; kind and delay only when given."""
    body: dict[str, Any] = {"prompt": prompt, "params": dict(params or {})}
    if kind is not None:
        body["kind"] = kind
    if delay is not None:
        body["delay"] = delay
    return body


async def post_task(
    http: httpx.AsyncClient, body: dict[str, Any], key: str | None, *, retries: int, backoff: float
) -> State:
    """The answer to POST /tasks, retried up to `retries` times; ApiError for a refusal."""
    headers = {"Idempotency-Key": f'"{key}"'} if key else {}
    for attempt in range(retries + 1):
        last = attempt == retries
        try:
            response = await http.post("/tasks", json=body, headers=headers)
        except httpx.TransportError as e:
            if last:
                raise
            log.info("POST /tasks got no answer (%r); retrying with the same key", e)
            await asyncio.sleep(_pause(attempt, backoff, None))
            continue
        if response.status_code not in RETRY_STATUSES or last:
            return json_answer(response, task_id=None)
        log.info("POST /tasks answered %d; retrying with the same key", response.status_code)
        await asyncio.sleep(_pause(attempt, backoff, response.headers.get("retry-after")))
    raise AssertionError("unreachable: the last try returns or raises")


def _pause(attempt: int, backoff: float, retry_after: str | None) -> float:
    if retry_after is not None:
        try:
            return min(MAX_RETRY_AFTER, max(0.0, float(retry_after)))
        except ValueError:
            pass  # an HTTP date: fall back to our own backoff
    base = backoff * 2.0**attempt
    return base * (0.5 + random.random() / 2)


def json_answer(response: httpx.Response, *, task_id: str | None) -> State:
    """The JSON of a 2xx answer; TaskNotFound on 404 for a task id, ApiError on other errors."""
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
