"""One client's view of the tasks it watches: at most one unsent state per task.

The hub calls `offer()` and never waits; the client's sender awaits `next()`. Events carry
the whole state, so a newer one simply replaces an unsent older one, and the terminal state,
being the newest there can be, is never dropped.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import orjson

from taskstore import is_terminal


@dataclass(frozen=True, slots=True)
class Event:
    """One task state, encoded once for every subscriber it goes to."""

    task_id: str
    seq: int
    payload: bytes
    terminal: bool
    text: str  # the WebSocket frame
    sse: bytes  # the Server-Sent Event: `id: <seq>`, `event: task`, `data: <payload>`


MAX_SEQ_DIGITS = 18  # a Redis seq is an int64; int() refuses strings over 4300 digits


def parse_seq(text: str) -> int | None:
    """A seq a client sent (Last-Event-ID, an ETag, last_seq) as an int; None if it is not one.

    Only ASCII digits count: `str.isdigit()` also accepts "²" and "①", which `int()` refuses.
    """
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= MAX_SEQ_DIGITS:
        return int(text)
    return None


def decode_event(payload: bytes) -> Event:
    """An event (or snapshot) JSON with its seq and terminality read once, for every subscriber."""
    state = orjson.loads(payload)
    seq = int(state["seq"])
    sse = b"id: %d\r\nevent: task\r\ndata: %s\r\n\r\n" % (seq, payload)
    return Event(state["task_id"], seq, payload, is_terminal(state), payload.decode(), sse)


class TooManyStreams(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit

    def __str__(self) -> str:
        return f"this API process already serves its limit of {self.limit} streams"


class SubscriberClosed(Exception):
    """The subscriber was closed by the hub (shutdown) or by its owner."""


class TooManyNotices(Exception):
    """A client sent more bad frames than it read answers."""


class Subscriber:
    MAX_NOTICES = 64

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self._slots: dict[str, Event] = {}
        self._notices: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._paused = False
        self.closed = False

    def offer(self, event: Event) -> None:
        """Keep `event` if it is newer than what this subscriber saw or holds for its task."""
        if event.seq <= self.seen.get(event.task_id, event.seq):
            return
        held = self._slots.get(event.task_id)
        if held is None or held.seq < event.seq:
            self._slots[event.task_id] = event
            self._wake.set()

    def notify(self, frame: bytes) -> None:
        """Queue a control frame (multiplexed WebSocket); TooManyNotices past the bound."""
        if len(self._notices) >= self.MAX_NOTICES:
            raise TooManyNotices
        self._notices.append(frame)
        self._wake.set()

    def forget(self, task_id: str) -> None:
        self.seen.pop(task_id, None)
        self._slots.pop(task_id, None)

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Hold events back while a client frame is handled, so its answer goes out first."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False
            self._wake.set()

    async def next(self) -> Event | bytes:
        """The next control frame or event to send; SubscriberClosed once closed."""
        while not (self._notices or (self._slots and not self._paused)):
            if self.closed:
                raise SubscriberClosed
            self._wake.clear()
            await self._wake.wait()
        if self._notices:
            return self._notices.popleft()
        task_id = next(iter(self._slots))
        event = self._slots.pop(task_id)
        if task_id in self.seen:
            self.seen[task_id] = event.seq
        return event
