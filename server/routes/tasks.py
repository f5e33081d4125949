"""Submit, read and cancel tasks."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Header, Response

from server.deps import StoreDep
from taskstore import Submitted, TaskRequest, TaskState, TaskStatus, state_seq
from taskstore.codec import decode_state

router = APIRouter(tags=["tasks"])

JSON = "application/json"


@router.post(
    "/tasks",
    status_code=202,
    response_model=Submitted,
    responses={
        200: {"model": Submitted, "description": "Answered from the cache: the task is already DONE."},
        413: {"description": "Body larger than MAX_BODY_BYTES."},
        503: {"description": "Queue full; retry after the Retry-After seconds."},
    },
)
async def submit_task(body: TaskRequest, store: StoreDep) -> Response:
    """Queue a task (202 + Location), or answer a repeated request from the cache (200)."""
    sub = await store.submit(body.prompt, body.params)
    if sub.cached:
        result = orjson.Fragment(sub.result_json or b"null")
        content = {"task_id": sub.task_id, "status": TaskStatus.DONE, "cached": True, "result": result}
        return Response(orjson.dumps(content), status_code=200, media_type=JSON)
    content = {"task_id": sub.task_id, "status": TaskStatus.PENDING, "cached": False}
    headers = {"Location": f"/tasks/{sub.task_id}"}
    return Response(orjson.dumps(content), status_code=202, media_type=JSON, headers=headers)


@router.get(
    "/tasks/{task_id}",
    response_model=TaskState,
    responses={
        304: {"description": "Not modified since the ETag given"},
        404: {"description": "Unknown or expired"},
    },
)
async def get_task(
    task_id: str, store: StoreDep, if_none_match: str | None = Header(default=None)
) -> Response:
    """The task's current state, the source of truth; ETag from its seq."""
    raw = await store.state(task_id)
    etag = _etag(decode_state(raw))
    if if_none_match is not None and etag in _etags(if_none_match):
        return Response(status_code=304, headers={"ETag": etag})
    return Response(raw, media_type=JSON, headers={"ETag": etag, "Cache-Control": "no-cache"})


@router.delete("/tasks/{task_id}", status_code=202, response_model=TaskState)
async def cancel_task(task_id: str, store: StoreDep) -> Response:
    """Cancel a PENDING or RUNNING task; 409 when it already ended."""
    moved = await store.cancel(task_id)
    return Response(moved.state, status_code=202, media_type=JSON)


def _etag(state: dict[str, Any]) -> str:
    return f'"{state_seq(state)}"'


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
