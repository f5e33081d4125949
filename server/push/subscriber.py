"""One client's view of the tasks it watches: at most one unsent state per task.

The hub calls `offer()` and never waits; the client's sender awaits `next()`. Events carry
the whole state, so a newer one simply replaces an unsent older one, and the terminal state,
being the newest there can be, is never dropped.

    offer(event) ─▶ the sender is parked in next() with nothing queued (a stream of `sends`)?
                     ├─ yes: the server's send, called right here; it writes at once unless the
                     │   transport is full, then the sender finishes it. A one-task stream's
                     │   terminal event goes so too, and next() then raises StreamEnded.
                     └─ otherwise: the task's slot, and the sender is woken

Sending from the hub saves waking the stream's task and resuming its frames for every event
(docs/performance.md, round 3); and at a burst of task ends, every client gets its terminal
event before any stream is taken down. A multiplexed socket's terminal events still go through
its sender (it unsubscribes the task after each).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import CoroutineType
from typing import Any, Literal

import orjson

from server.push import framed
from server.push.connection import Connection
from server.push.ends import Ends
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
    # The ASGI messages of a delivery, built once for every subscriber (the server only reads them).
    sse_message: dict[str, Any] = field(init=False, repr=False, compare=False)
    ws_message: dict[str, Any] = field(init=False, repr=False, compare=False)
    # The bytes on the wire for a direct write (server/push/framed.py), built at the first one:
    # snapshots and events that no idle stream waits for are never framed.
    _wire: tuple[bytes, bytes] | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        body = {"type": "http.response.body", "body": self.sse, "more_body": True}
        object.__setattr__(self, "sse_message", body)
        object.__setattr__(self, "ws_message", {"type": "websocket.send", "text": self.text})

    def wire(self, sse: bool) -> bytes:
        """The event as an HTTP/1.1 chunk of an SSE body (`sse`) or as a WebSocket text frame."""
        wire = self._wire
        if wire is None:
            wire = (framed.sse_chunk(self.sse), framed.ws_frame(self.payload))
            object.__setattr__(self, "_wire", wire)
        return wire[0] if sse else wire[1]


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


class StreamEnded(SubscriberClosed):
    """The hub sent the terminal event of the stream's one task: the stream is over."""


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
        "_sending",
        "_slots",
        "_waiter",
        "closed",
        "connection",
        "delivered",
        "ended",
        "ends",
        "last_sent",
        "ping_frame",
        "seen",
        "sending_since",
        "sends",
        "task_id",
        "transport",
    )

    MAX_NOTICES = 64

    def __init__(
        self, transport: str = "stream", task_id: str | None = None, ends: Ends | None = None
    ) -> None:
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
        # Set by a stream whose events the hub may hand straight to `connection`, in this form.
        self.sends: Literal["sse", "ws"] | None = None
        self.delivered = 0  # events sent that way (the sender counts the rest)
        self.ended = False  # the terminal event of its one task was sent that way
        self.ends = ends  # where the stream's end waits for a burst of sends to settle (ends.py)
        self._sending: _Sending | None = None  # such a send that found the transport full

    def __str__(self) -> str:
        if self.task_id is None:
            return f"{self.transport} stream"
        return f"{self.transport} stream of task {self.task_id}"

    def offer(self, event: Event) -> bool:
        """Keep `event` if it is newer than what this subscriber saw or holds for its task;
        True when it was sent to the client right away."""
        if event.seq <= self.seen.get(event.task_id, event.seq):
            return False
        waiter = self._waiter
        if (
            waiter is not None  # the sender is parked with nothing queued: a send now overtakes nothing
            and self.sends is not None
            and not waiter.done()
            and not self._paused
            and not self._notices
            and (self.task_id is not None or not event.terminal)
        ):
            self._send_now(event)
            return True
        held = self._slots.get(event.task_id)
        if held is None or held.seq < event.seq:
            self._slots[event.task_id] = event
            self._wake()
        return False

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
        if not self.ended:  # an ended stream is woken by `ends`, after the burst it ended in
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
        """The next control frame or event to send; SubscriberClosed once closed.

        StreamEnded once the hub sent the stream's terminal event; OSError when a send begun by
        `offer()` failed (the client is gone).
        """
        while True:
            if self._sending is not None:  # it came before anything queued since
                await self._finish_send(self._sending)
            if self.ended:
                raise StreamEnded
            if self._notices or (self._slots and not self._paused):
                break
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

    def _send_now(self, event: Event) -> None:
        """Write the event here, framed once for all (server/push/framed.py), or else call the
        server's send here: with room in the transport it writes and returns without waiting
        (uvicorn's do), so no task of this stream runs. When it would wait, or fails, the sender
        is woken to finish it, timed by the watchdog as its own sends are. After a terminal
        event the sender is woken to end the stream, once the burst of sends settled (ends.py)."""
        connection = self.connection
        if connection is None:
            raise RuntimeError(f"{self} sends events directly but has no connection")
        sse = self.sends == "sse"
        self.seen[event.task_id] = event.seq
        self.delivered += 1
        if connection.write_framed(event.wire(sse)):
            self._sent(event)
            return
        sending = connection.send(event.sse_message if sse else event.ws_message)
        # A coroutine is stepped as it is (uvicorn's sends are); other awaitables through __await__.
        step = sending if type(sending) is CoroutineType else sending.__await__()
        try:
            yielded = step.send(None)
        except StopIteration:
            self._sent(event)
            return
        except OSError as e:  # the client is gone; the sender finds out as from its own send
            self._sending = _Sending(None, None, e)
        else:
            self.sending_since = time.monotonic()
            self._sending = _Sending(step, yielded, None)
            self.ended = event.terminal
        self._wake()

    def _sent(self, event: Event) -> None:
        self.last_sent = time.monotonic()
        if event.terminal:
            self.ended = True
            if self.ends is None:
                self._wake()
            else:
                self.ends.add(self._wake)

    async def _finish_send(self, sending: _Sending) -> None:
        try:
            await sending
        finally:
            self._sending = None
            self.sending_since = 0.0
        self.last_sent = time.monotonic()


class _Sending:
    """A send that `Subscriber._send_now` began outside any task and that did not complete:
    awaiting it goes on from where the send stopped (or raises what it failed with)."""

    __slots__ = ("error", "step", "yielded")

    def __init__(
        self,
        step: Generator[Any, None, Any] | Coroutine[Any, None, Any] | None,
        yielded: Any,
        error: OSError | None,
    ) -> None:
        self.step, self.yielded, self.error = step, yielded, error

    def __await__(self) -> Generator[Any, Any, None]:
        # Hand the event loop what the send waited on, and pass back what the loop sends or
        # throws in (so a cancellation reaches the send itself).
        if self.error is not None:
            raise self.error
        step, yielded = self.step, self.yielded
        if step is None:
            return
        while True:
            try:
                value = yield yielded
            except BaseException as e:
                try:
                    yielded = step.throw(e)
                except StopIteration:
                    return
                continue
            try:
                yielded = step.send(value)
            except StopIteration:
                return
