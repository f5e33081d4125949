"""Events the hub has read and not yet offered: the newest state per task, in the order read.

An event is not offered the moment it is read. The offers run in a callback once the reader
waits for the socket again, a CHUNK of deliveries at a time, and the reader reads between two
chunks. So a newer state of a task read meanwhile takes the place of its older one, which then
never goes out. At a task's end its last progress step and DONE come a millisecond apart: with
thousands of watchers, DONE replaces a step not yet sent instead of waiting behind its sends.
That is the latest-state slot's rule (a client shows the newest state; README, "superseded"),
applied before the sends; events of one task never change order.

    hold(event) ─▶ newest per task (an older one replaced keeps its place) ─▶ callback, once
    callback    ─▶ offer events until CHUNK deliveries ─▶ more held? ─▶ again, after the reader
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from server.push.subscriber import Event

CHUNK = 500  # deliveries per turn of the event loop (a few milliseconds of sends)


class Held:
    def __init__(self, offer: Callable[[Event], int], on_offer: Callable[[], None]) -> None:
        """`offer(event)` hands it to its watchers and returns how many there were;
        `on_offer()` is called before each chunk."""
        self._offer = offer
        self._on_offer = on_offer
        self._events: dict[str, Event] = {}
        self._order: deque[str] = deque()
        self._scheduled = False
        self.superseded = 0  # events replaced by a newer state of their task before they went out

    def hold(self, event: Event) -> None:
        held = self._events.get(event.task_id)
        if held is None:
            self._order.append(event.task_id)
        else:
            self.superseded += 1
            if held.seq > event.seq:
                return
        self._events[event.task_id] = event
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._offer_chunk)

    def _offer_chunk(self) -> None:
        self._on_offer()
        events, order, budget = self._events, self._order, CHUNK
        while order and budget > 0:
            budget -= max(1, self._offer(events.pop(order.popleft())))
        if order:
            asyncio.get_running_loop().call_soon(self._offer_chunk)
        else:
            self._scheduled = False
