from __future__ import annotations

import asyncio

from server.push.subscriber import Event, Subscriber


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
