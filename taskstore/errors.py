"""Domain errors. They carry data; the API maps them to HTTP answers in one place."""

from __future__ import annotations

# Characters of a client's value an error echoes (a task id is 32): a 500 KB id is not sent back.
ECHO_LIMIT = 64


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` as an error may echo it: cut after `limit` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


class TaskcastError(Exception):
    """Base class of every error taskstore raises."""


class TaskNotFound(TaskcastError):
    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id

    def __str__(self) -> str:
        return f"task {clip(self.task_id)} not found (unknown or expired)"


class TransitionRejected(TaskcastError):
    def __init__(self, task_id: str, current: str | None, wanted: str, reason: str) -> None:
        super().__init__(task_id, current, wanted, reason)
        self.task_id = task_id
        self.current = current
        self.wanted = wanted
        self.reason = reason

    def __str__(self) -> str:
        return f"task {clip(self.task_id)}: move {self.current} -> {self.wanted} rejected ({self.reason})"


class QueueFull(TaskcastError):
    def __init__(self, length: int, limit: int, retry_after: int) -> None:
        super().__init__(length, limit, retry_after)
        self.length = length
        self.limit = limit
        self.retry_after = retry_after

    def __str__(self) -> str:
        waiting = f"{self.length} entries waiting, limit {self.limit}"
        return f"queue is full ({waiting}); retry in {self.retry_after} s"


class DeadLetterNotFound(TaskcastError):
    def __init__(self, ident: str) -> None:
        super().__init__(ident)
        self.ident = ident

    def __str__(self) -> str:
        return f"no dead letter {self.ident!r} (neither an entry id nor a dead-lettered task id)"


class CannotResubmit(TaskcastError):
    """A task or dead letter that cannot be submitted again, and why."""

    def __init__(self, ident: str, reason: str, status: str | None = None) -> None:
        super().__init__(ident, reason, status)
        self.ident = ident
        self.reason = reason
        self.status = status

    def __str__(self) -> str:
        return f"{self.ident} cannot be submitted again: {self.reason}"


class IdempotencyConflict(TaskcastError):
    """An Idempotency-Key that was used with another request body."""

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id

    def __str__(self) -> str:
        return f"this Idempotency-Key was used with another request body (task {self.task_id})"


class IdempotencyPending(TaskcastError):
    """The first request with this Idempotency-Key is still being submitted."""

    def __init__(self, waited: float) -> None:
        super().__init__(waited)
        self.waited = waited

    def __str__(self) -> str:
        return f"the first request with this Idempotency-Key is still in progress after {self.waited:g} s"
