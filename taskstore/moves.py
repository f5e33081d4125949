"""A requested state change (Move), its outcome (Moved), and reading the transition script's reply."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from taskstore.errors import TaskNotFound, TransitionRejected
from taskstore.model import TaskStatus


@dataclass(frozen=True, slots=True)
class Move:
    """One requested state change. `token` must match the attempt holding the task when set.

    `dead_letter` (with `to` FAILED): the same atomic step adds the task's dead letter.
    """

    task_id: str
    to: TaskStatus
    fields: Mapping[str, str] = field(default_factory=dict)
    token: str = ""
    new_token: str = ""
    new_attempt: bool = False
    dead_letter: bool = False
    kind: str | None = None
    signature: str | None = None  # of the task's request: an end state clears its in-flight marker


@dataclass(frozen=True, slots=True)
class Moved:
    task_id: str
    state: bytes
    request: bytes | None = None
    signature: str | None = None


def moved_or_rejected(move: Move, reply: Any) -> Moved | TransitionRejected:
    """A move's answer in a batch: a rejection is returned, not raised, so the others go on."""
    if isinstance(reply, ResponseError) and not isinstance(reply, NoScriptError):
        # The script failed on this task's hash alone (fields missing or garbled): reject it
        # rather than failing every other move of the batch.
        return TransitionRejected(move.task_id, None, move.to.value, f"malformed task: {reply}")
    if isinstance(reply, Exception):
        raise reply
    try:
        return moved(move, reply)
    except TransitionRejected as e:
        return e
    except TaskNotFound:
        return TransitionRejected(move.task_id, None, move.to.value, "missing")


def moved(move: Move, reply: list[Any]) -> Moved:
    """The transition script's answer to `move`; TaskNotFound or TransitionRejected when refused."""
    if reply[0] == 0:
        current = reply[2].decode() if reply[2] else None
        if current is None:
            raise TaskNotFound(move.task_id)
        raise TransitionRejected(move.task_id, current, move.to.value, reply[1].decode())
    if len(reply) > 2:
        return Moved(move.task_id, reply[1], reply[2] or None, reply[3].decode() or None)
    return Moved(move.task_id, reply[1])
