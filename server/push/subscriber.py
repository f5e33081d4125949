"""One client's view of the tasks it watches: at most one unsent state per task.

The hub calls `offer()` and never waits; the client's sender awaits `next()`. Events carry
the whole state, so a newer one simply replaces an unsent older one, and the terminal state,
being the newest there can be, is never dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import orjson

from server.push.connection import Connection
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
    updated_at: float = 0.0  # when the transition wrote it (Redis's clock); 0.0 if the state has none


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
    updated_at = state.get("updated_at")
    stamp = float(updated_at) if isinstance(updated_at, int | float) else 0.0
    return Event(state["task_id"], seq, payload, is_terminal(state), payload.decode(), sse, stamp)


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
    """One stream's client. Its sender marks each send (`sending_since`, `last_sent`, on the
    time.monotonic() clock) so the watchdog can drop it when a send stalls, without a timer
    per send.

    Thousands are open at once, so it is kept small: slots, no queue or asyncio.Event (each
    carries a deque), one future only while its sender waits.
    """

    __slots__ = (
        "_notices",
        "_paused",
        "_slots",
        "_waiter",
        "closed",
        "connection",
        "last_sent",
        "ping_frame",
        "seen",
        "sending_since",
        "task_id",
        "transport",
    )

    MAX_NOTICES = 64

    def __init__(self, transport: str = "stream", task_id: str | None = None) -> None:
        self.transport = transport
        self.task_id = task_id
        self.seen: dict[str, int] = {}
        self._slots: dict[str, Event] = {}
        self._notices: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self.closed = False
        self.sending_since = 0.0  # 0.0 while no send is under way
        self.last_sent = time.monotonic()
        self.connection: Connection | None = None
        self.ping_frame: bytes | None = None  # what the watchdog sends when the stream is idle

    def __str__(self) -> str:
        if self.task_id is None:
            return f"{self.transport} stream"
        return f"{self.transport} stream of task {self.task_id}"

    def offer(self, event: Event) -> None:
        """Keep `event` if it is newer than what this subscriber saw or holds for its task."""
        if event.seq <= self.seen.get(event.task_id, event.seq):
            return
        held = self._slots.get(event.task_id)
        if held is None or held.seq < event.seq:
            self._slots[event.task_id] = event
            self._wake()

    def notify(self, frame: bytes) -> None:
        """Queue a control frame (multiplexed WebSocket); TooManyNotices past the bound."""
        if len(self._notices) >= self.MAX_NOTICES:
            raise TooManyNotices
        self._notices.append(frame)
        self._wake()

    def ping(self) -> None:
        """Queue the keep-alive frame unless something is already waiting to go out."""
        if self.ping_frame is not None and not self._notices:
            self._notices.append(self.ping_frame)
            self._wake()

    def forget(self, task_id: str) -> None:
        self.seen.pop(task_id, None)
        self._slots.pop(task_id, None)

    def close(self) -> None:
        self.closed = True
        self._wake()

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Hold events back while a client frame is handled, so its answer goes out first."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False
            self._wake()

    async def next(self) -> Event | bytes:
        """The next control frame or event to send; SubscriberClosed once closed."""
        while not (self._notices or (self._slots and not self._paused)):
            if self.closed:
                raise SubscriberClosed
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._notices:
            return self._notices.pop(0)
        task_id = next(iter(self._slots))
        event = self._slots.pop(task_id)
        if task_id in self.seen:
            self.seen[task_id] = event.seq
        return event

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
