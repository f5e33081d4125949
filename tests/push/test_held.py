"""The hub's held events: newest per task, offered a chunk of deliveries per turn of the loop."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from server.push import held
from server.push.held import Held
from server.push.subscriber import Event, decode_event


def _event(task_id: str, seq: int) -> Event:
    return decode_event(orjson.dumps({"task_id": task_id, "seq": seq, "status": "RUNNING"}))


async def test_a_newer_state_read_between_chunks_replaces_the_unsent_one_in_its_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(held, "CHUNK", 2)  # two deliveries a turn: each event has two watchers
    offered: list[tuple[str, int]] = []

    def offer(event: Event) -> int:
        offered.append((event.task_id, event.seq))
        return 2

    events = Held(offer, lambda: None)
    for task_id in ("a", "b", "c"):
        events.hold(_event(task_id, 1))
    await asyncio.sleep(0)  # one turn: one chunk
    assert offered == [("a", 1)]

    events.hold(_event("b", 2))  # read while b's first state waits for its turn
    events.hold(_event("c", 1))  # an older or equal seq read late changes nothing
    for _ in range(3):
        await asyncio.sleep(0)

    assert offered == [("a", 1), ("b", 2), ("c", 1)]
    assert events.superseded == 2


async def test_an_older_state_read_after_a_newer_one_is_dropped() -> None:
    offered: list[int] = []
    events = Held(lambda e: offered.append(e.seq) or 1, lambda: None)
    events.hold(_event("a", 5))
    events.hold(_event("a", 4))
    await asyncio.sleep(0)

    assert offered == [5]
