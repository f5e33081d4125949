"""taskcast's Redis data model: keys, states, encoding and the atomic transition."""

from __future__ import annotations

from taskstore.codec import decode_state, is_terminal, state_seq
from taskstore.errors import QueueFull, TaskcastError, TaskNotFound, TransitionRejected
from taskstore.keys import Keys
from taskstore.model import ALLOWED, TERMINAL, Submitted, TaskRequest, TaskState, TaskStatus
from taskstore.moves import Move, Moved
from taskstore.store import Submission, TaskStore, new_task_id
from taskstore.stream import Entry, TaskQueue

__all__ = [
    "ALLOWED",
    "TERMINAL",
    "Entry",
    "Keys",
    "Move",
    "Moved",
    "QueueFull",
    "Submission",
    "Submitted",
    "TaskNotFound",
    "TaskQueue",
    "TaskRequest",
    "TaskState",
    "TaskStatus",
    "TaskStore",
    "TaskcastError",
    "TransitionRejected",
    "decode_state",
    "is_terminal",
    "new_task_id",
    "state_seq",
]
