"""Pages of the task list: ids from the indexes (taskstore/index.py), states read in one
pipelined round trip, each row tagged with its kind. Shared by GET /tasks and the dashboard."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel

from taskstore import TaskState, TaskStatus, TaskStore
from taskstore.index import Cursor, TaskIndex, task_kind

MAX_LIMIT = 200


class TaskRow(TaskState):
    kind: str


class TaskPage(BaseModel):
    """Tasks newest first; `next_cursor` fetches the next (older) page, null on the last."""

    tasks: list[TaskRow]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Filter:
    statuses: Sequence[TaskStatus]
    kinds: Sequence[str]


def served_kinds(kinds: Sequence[str]) -> list[str]:
    """The kinds this service runs (TASK_KINDS), as the list and the stats show them."""
    return list(kinds)


KIND_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
CURSOR_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,9})?~([0-9]{1,4}\.[0-9]{1,6}-)?[0-9a-f]{1,64}$"


def make_filter(status: TaskStatus | None, kind: str | None, served: Sequence[str]) -> Filter:
    """ValueError for a kind that is not a kind's name. A kind no longer served (or never) is
    read like any other: its tasks stay listed until they expire, and an unknown one has none."""
    if kind is not None and not re.match(KIND_PATTERN, kind):
        raise ValueError(f"not a kind name: {kind[:64]!r} (letters, digits, _ . : -; at most 64)")
    return Filter([status] if status else list(TaskStatus), [kind] if kind else list(served))


async def read_page(
    store: TaskStore, index: TaskIndex, where: Filter, limit: int, cursor: Cursor | None
) -> tuple[list[dict[str, Any]], Cursor | None]:
    """Rows (state dicts with `kind`) and the cursor of the next page; expired tasks are skipped."""
    page = await index.page(index.index_keys(where.kinds, where.statuses), limit, cursor)
    raws = await store.states([task_id for _, task_id in page.positions])
    return [with_kind(orjson.loads(raw)) for raw in raws if raw is not None], page.next_cursor


def with_kind(state: dict[str, Any]) -> dict[str, Any]:
    state.setdefault("kind", task_kind(state.get("kind")))
    return state
