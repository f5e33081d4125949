"""Submitting again what failed: a FAILED task, or a dead letter. Terminal states are final,
so both become a NEW task (new id, attempts from zero) with the same request; the old task
stays FAILED for whoever watches it. The queue limit applies: the API is under load control.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskstore.codec import decode_kind, decode_request
from taskstore.deadletters import DeadLetter, DeadLetters
from taskstore.errors import CannotResubmit, DeadLetterNotFound, TaskNotFound
from taskstore.model import TaskStatus
from taskstore.store import Submission, TaskStore


@dataclass(frozen=True, slots=True)
class Requeued:
    letter: DeadLetter
    submission: Submission


async def resubmit_failed(store: TaskStore, task_id: str) -> Submission:
    """A new task with the request of FAILED task `task_id`."""
    reply: list[Any] = await store.redis.hmget(store.keys.task(task_id), ["status", "request"])
    status, request = reply
    if status is None:
        raise TaskNotFound(task_id)
    current = status.decode()
    if current != TaskStatus.FAILED:
        raise CannotResubmit(task_id, f"only a FAILED task is, this one is {current}", current)
    return await _submit(store, task_id, request or b"")


async def requeue_dead_letter(letters: DeadLetters, store: TaskStore, ident: str) -> Requeued:
    """Submit a dead letter's request as a new task, then remove the dead letter."""
    letter = await letters.find(ident)
    if letter is None:
        raise DeadLetterNotFound(ident)
    submission = await _submit(store, letter.ref, letter.request)
    await letters.remove(letter)
    return Requeued(letter, submission)


async def _submit(store: TaskStore, ident: str, request: bytes | str) -> Submission:
    try:
        prompt, params = decode_request(request)
    except ValueError as e:
        raise CannotResubmit(ident, f"no usable request ({e})") from e
    # An operator asks for a new run: never joined to one in flight.
    return await store.submit(prompt, params, kind=decode_kind(request), coalesce=False)
