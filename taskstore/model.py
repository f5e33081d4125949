"""Task states, the moves allowed between them, and the public shape of a task."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field

from taskstore.kinds import DEFAULT_KIND, KIND_PATTERN
from taskstore.params_schema import DOCUMENTED_PARAMS


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL: frozenset[TaskStatus] = frozenset({TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED})

# RUNNING -> RUNNING is a progress update or a reclaimed attempt; RUNNING -> PENDING is a retry.
# PENDING -> FAILED lets a task that can never start (a malformed hash, no attempts left) end.
ALLOWED: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.PENDING: frozenset({TaskStatus.RUNNING, TaskStatus.CANCELLED, TaskStatus.FAILED}),
    TaskStatus.RUNNING: frozenset(
        {
            TaskStatus.RUNNING,
            TaskStatus.PENDING,
            TaskStatus.DONE,
            TaskStatus.FAILED,
            TaskStatus.CANCELLED,
        }
    ),
    TaskStatus.DONE: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}


class TaskRequest(BaseModel):
    """The body of `POST /tasks`."""

    prompt: str = Field(min_length=1, max_length=4000, description="What the task works on.")
    params: Annotated[dict[str, Any], DOCUMENTED_PARAMS] = Field(
        default_factory=dict,
        description=(
            "Handler parameters; the demo handler reads duration (0-600 s), steps (0-1000), fail and"
            " fail_times. Numbers must fit a 64-bit integer or a double, or the answer is 422."
        ),
    )
    kind: str | None = Field(
        None, pattern=KIND_PATTERN, description="One of TASK_KINDS; the default kind when left out."
    )
    delay: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="Seconds to wait before the task may start (MAX_DELAY)."
    )


class TaskState(BaseModel):
    """A task's whole public state at one `seq`: the body of GET and of every pushed event."""

    task_id: str
    seq: int
    status: TaskStatus
    kind: str = DEFAULT_KIND
    progress: float | None = None
    attempts: int = 0
    result: Any = None
    error: str | None = None
    cached: bool = False
    created_at: float
    updated_at: float
    run_at: float | None = Field(None, description="Earliest start of a delayed task (epoch seconds).")


class Submitted(BaseModel):
    """The answer to `POST /tasks`."""

    task_id: str
    status: TaskStatus
    cached: bool
    coalesced: bool = Field(False, description="An identical request in flight answers: its task id.")
    replayed: bool = Field(False, description="A repeat of an Idempotency-Key: the first request's task.")
    run_at: float | None = None
    result: Any = None
    watch_token: str | None = Field(
        None, description="With API_KEY set: a JWT that lets its holder watch this task, and only that"
    )
