"""The operations API: the task list, workers, stats, dead letters, and submitting again.

All reads are index, hash or counter reads of bounded size (taskstore/index.py, opsstats.py,
workers.py); none scans the keyspace.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from server.deps import SettingsDep, StoreDep
from server.ops.deadletters import KindsDeadLetters
from server.ops.tasklist import (
    CURSOR_PATTERN,
    KIND_PATTERN,
    MAX_LIMIT,
    TaskPage,
    make_filter,
    read_page,
    served_kinds,
)
from taskstore import Submitted, TaskStatus
from taskstore.errors import DeadLetterNotFound
from taskstore.index import Cursor, TaskIndex
from taskstore.opsstats import Stats, read_stats
from taskstore.resubmit import requeue_dead_letter, resubmit_failed
from taskstore.store import Submission
from taskstore.workers import Heartbeats, WorkerBeat

router = APIRouter(tags=["operations"])


class Workers(BaseModel):
    """Workers heard from within `gone_after` seconds (a killed one drops off after that)."""

    workers: list[WorkerBeat]
    gone_after: float


class DeadLetterOut(BaseModel):
    entry_id: str
    kind: str
    task_id: str
    error: str
    attempts: int
    request: str
    time: float


class Resubmitted(Submitted):
    """The new task, and what it was submitted from (a task id or a dead letter's entry id)."""

    resubmitted_from: str


@router.get("/tasks", response_model=TaskPage, responses={422: {"description": "Bad filter or cursor"}})
async def list_tasks(
    store: StoreDep,
    settings: SettingsDep,
    status: TaskStatus | None = None,
    kind: Annotated[str | None, Query(pattern=KIND_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[
        str | None, Query(pattern=CURSOR_PATTERN, description="`next_cursor` of a page")
    ] = None,
) -> dict[str, Any]:
    """Tasks newest first, optionally of one status and kind; within RESULT_EXPIRY only.

    Pass the answer's `next_cursor` as `cursor` for the next page: pages stay stable while
    tasks are added or change status.
    """
    try:
        where = make_filter(status, kind, served_kinds(settings.kinds))
    except ValueError as e:
        raise _invalid("kind", e) from e
    try:
        after = Cursor.decode(cursor) if cursor else None
    except ValueError as e:
        raise _invalid("cursor", e) from e
    index = TaskIndex(store.redis, store.keys, result_ttl=settings.result_expiry)
    rows, next_cursor = await read_page(store, index, where, limit, after)
    return {"tasks": rows, "next_cursor": next_cursor.encode() if next_cursor else None}


@router.get("/workers", response_model=Workers)
async def list_workers(store: StoreDep, settings: SettingsDep) -> Workers:
    """Live workers: name, host, pid, kinds, concurrency, running, done, failed, start, last heartbeat."""
    live = await Heartbeats(store.redis, store.keys).live(settings.worker_gone_after)
    return Workers(workers=live, gone_after=settings.worker_gone_after)


@router.get("/stats", response_model=Stats)
async def stats(request: Request) -> Stats:
    """By kind: queued, delayed, running, dead letters, tasks by status, DONE and FAILED per second
    over the last minute; `seconds` lists the last two minutes second by second."""
    # The dashboard feed's reader: one script call per Redis node (taskstore/tallies.py).
    return await read_stats(request.app.state.ops_feed.reader)


@router.get(
    "/deadletters", response_model=list[DeadLetterOut], responses={422: {"description": "Bad kind or limit"}}
)
async def list_dead_letters(
    store: StoreDep,
    settings: SettingsDep,
    kind: Annotated[str | None, Query(pattern=KIND_PATTERN, description="Only this kind's")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Tasks that failed every attempt, newest first, of every kind (or `kind`'s); `entry_id`
    names the letter to requeue."""
    kinds = [kind] if kind else served_kinds(settings.kinds)
    letters = await KindsDeadLetters(store.redis, store.keys, kinds).newest(limit)
    return [DeadLetterOut(**{**asdict(k.letter), "entry_id": k.ref, "kind": k.kind}) for k in letters]


@router.post(
    "/deadletters/{ident}/requeue",
    status_code=202,
    response_model=Resubmitted,
    responses={404: {"description": "No such dead letter"}, 409: {"description": "No usable request"}},
)
async def requeue(ident: str, store: StoreDep, settings: SettingsDep, response: Response) -> Resubmitted:
    """Submit a dead letter's request as a new task and remove the dead letter.

    `ident` is the dead letter's entry id (of any kind) or the failed task's id.
    """
    found = await KindsDeadLetters(store.redis, store.keys, served_kinds(settings.kinds)).holder(ident)
    if found is None:
        raise DeadLetterNotFound(ident)
    letters, name = found
    done = await requeue_dead_letter(letters, store, name)
    return _answer(done.submission, done.letter.task_id, response)


@router.post(
    "/tasks/{task_id}/resubmit",
    status_code=202,
    response_model=Resubmitted,
    responses={404: {"description": "Unknown or expired"}, 409: {"description": "Not FAILED"}},
)
async def resubmit(task_id: str, store: StoreDep, response: Response) -> Resubmitted:
    """Submit a FAILED task's request again, as a new task (the failed one stays FAILED)."""
    return _answer(await resubmit_failed(store, task_id), task_id, response)


def _invalid(name: str, e: ValueError) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("query", name), "msg": str(e)}])


def _answer(sub: Submission, source: str, response: Response) -> Resubmitted:
    response.headers["Location"] = f"/tasks/{sub.task_id}"
    if sub.cached:
        response.status_code = 200
    status = TaskStatus.DONE if sub.cached else TaskStatus.PENDING
    result = orjson.loads(sub.result_json) if sub.cached and sub.result_json else None
    return Resubmitted(
        task_id=sub.task_id, status=status, cached=sub.cached, result=result, resubmitted_from=source
    )
