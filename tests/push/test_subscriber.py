from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from server.push.connection import Connection
from server.push.subscriber import Event, StreamEnded, Subscriber


def _event(seq: int, *, terminal: bool = False, task_id: str = "t") -> Event:
    payload = b'{"seq": %d}' % seq
    return Event(task_id, seq, payload, terminal, payload.decode(), b"data: " + payload)


async def test_a_newer_state_replaces_an_unsent_older_one() -> None:
    sub = Subscriber()
    sub.seen["t"] = 0

    for seq in (2, 4, 3):
        sub.offer(_event(seq))

    assert await sub.next() == _event(4)


async def test_the_terminal_state_is_never_replaced_or_dropped() -> None:
    sub = Subscriber()
    sub.seen["t"] = 0
    sub.offer(_event(5, terminal=True))

    sub.offer(_event(3))

    assert await sub.next() == _event(5, terminal=True)


async def test_states_the_client_already_saw_are_dropped() -> None:
    sub = Subscriber()
    sub.seen["t"] = 4

    sub.offer(_event(3))
    sub.offer(_event(4))
    sub.offer(_event(6))

    assert await sub.next() == _event(6)


async def test_events_of_unwatched_tasks_are_ignored() -> None:
    sub = Subscriber()

    sub.offer(_event(9, task_id="other"))

    assert sub.seen == {}
    assert not await _has_item(sub)


async def test_answering_a_frame_sends_its_answer_before_any_event() -> None:
    sub = Subscriber()
    sub.seen["t"] = 0

    with sub.answering():
        sub.offer(_event(2))
        assert not await _has_item(sub)
        sub.notify(b'{"op": "subscribed"}')

    assert await sub.next() == b'{"op": "subscribed"}'
    assert await sub.next() == _event(2)


async def _has_item(sub: Subscriber) -> bool:
    try:
        await asyncio.wait_for(sub.next(), 0.05)
    except TimeoutError:
        return False
    return True


class _Server:
    """An ASGI send that writes at once while `room` is set, else waits for it (a full transport)."""

    def __init__(self) -> None:
        self.sent: list[object] = []
        self.room = asyncio.Event()
        self.room.set()
        self.fail = False

    async def send(self, message: Message) -> None:
        await self.room.wait()
        if self.fail:
            raise OSError("client gone")
        self.sent.append(message.get("text", message.get("body")))


def _streaming(server: _Server, task_id: str | None = None) -> Subscriber:
    sub = Subscriber("ws", task_id)
    sub.seen["t"] = 0
    sub.connection = Connection(server.send)
    sub.sends = "ws"
    return sub


async def test_a_waiting_sender_has_events_sent_without_being_woken() -> None:
    server = _Server()
    sub = _streaming(server)
    sender = asyncio.ensure_future(sub.next())
    await asyncio.sleep(0)

    assert sub.offer(_event(2)) and sub.offer(_event(3))

    assert server.sent == ['{"seq": 2}', '{"seq": 3}'] and sub.delivered == 2
    assert not sender.done() and sub.seen["t"] == 3
    sub.offer(_event(4, terminal=True))  # a multiplexed socket's ends go through its sender
    assert await sender == _event(4, terminal=True)


async def test_a_one_task_stream_has_its_terminal_event_sent_and_then_ends() -> None:
    server = _Server()
    sub = _streaming(server, task_id="t")
    sender = asyncio.ensure_future(sub.next())
    await asyncio.sleep(0)

    assert sub.offer(_event(4, terminal=True))

    assert server.sent == ['{"seq": 4}']
    with pytest.raises(StreamEnded):
        await sender
    assert not sub.offer(_event(5))  # nothing follows the end


async def test_a_send_that_would_wait_is_finished_by_the_sender_before_later_events() -> None:
    server = _Server()
    sub = _streaming(server)
    sender = asyncio.ensure_future(sub.next())
    await asyncio.sleep(0)
    server.room.clear()

    assert sub.offer(_event(2))
    assert not sub.offer(_event(3))  # queued behind the unfinished send
    assert sub.sending_since > 0  # the watchdog times it
    await asyncio.sleep(0.01)
    assert server.sent == [] and not sender.done()

    server.room.set()
    assert await sender == _event(3)
    assert server.sent == ['{"seq": 2}'] and sub.sending_since == 0.0


async def test_a_failed_send_reaches_the_sender() -> None:
    server = _Server()
    sub = _streaming(server)
    sender = asyncio.ensure_future(sub.next())
    await asyncio.sleep(0)
    server.fail = True

    sub.offer(_event(2))

    with pytest.raises(OSError):
        await sender


async def test_no_event_is_sent_past_a_paused_or_busy_sender() -> None:
    server = _Server()
    sub = _streaming(server)
    with sub.answering():
        sender = asyncio.ensure_future(sub.next())
        await asyncio.sleep(0)
        assert not sub.offer(_event(2))
    assert await sender == _event(2)
    assert server.sent == []
