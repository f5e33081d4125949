"""Streams whose terminal event went out end once the hub's burst of sends settles."""

from __future__ import annotations

import asyncio
import time

from server.push import ends
from server.push.ends import Ends


async def test_ends_wait_while_the_hub_sends_and_follow_once_it_settles() -> None:
    woken: list[int] = []
    waiting = Ends()
    for n in range(ends.CHUNK + 3):
        waiting.add(lambda n=n: woken.append(n))  # type: ignore[misc]
    busy_until = time.monotonic() + ends.SETTLE * 5
    while time.monotonic() < busy_until:
        waiting.busy()
        await asyncio.sleep(ends.SETTLE / 4)
        assert woken == []

    await asyncio.sleep(ends.SETTLE * 3)
    assert woken == list(range(ends.CHUNK + 3))  # in order, a chunk a turn of the loop


async def test_a_burst_that_does_not_settle_still_ends_its_streams_in_time() -> None:
    woken: list[float] = []
    waiting = Ends()
    started = time.monotonic()
    waiting.add(lambda: woken.append(time.monotonic()))
    while not woken and time.monotonic() - started < ends.LONGEST * 4:
        waiting.busy()
        await asyncio.sleep(ends.SETTLE / 4)

    assert woken and woken[0] - started < ends.LONGEST + ends.SETTLE * 3
