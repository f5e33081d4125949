from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from taskstore.coalesce import Coalescer


class Recorder:
    """A `send` that records its batches and answers each call with a reply of its choice."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail_next = False

    async def __call__(self, calls: Sequence[str]) -> list[Any]:
        self.batches.append(list(calls))
        await self.release.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("redis went away")
        return [ValueError(c) if c.startswith("bad") else c.upper() for c in calls]


async def test_concurrent_calls_share_one_send_and_get_their_own_replies() -> None:
    send = Recorder()
    coalescer = Coalescer(send)

    replies = await asyncio.gather(*(coalescer.call(f"c{i}") for i in range(5)))

    assert replies == ["C0", "C1", "C2", "C3", "C4"]
    assert send.batches == [["c0", "c1", "c2", "c3", "c4"]]


async def test_calls_made_during_a_send_go_in_the_next_one() -> None:
    send = Recorder()
    send.release.clear()
    coalescer = Coalescer(send)
    first = asyncio.ensure_future(coalescer.call("a"))
    await asyncio.sleep(0)
    later = [asyncio.ensure_future(coalescer.call(c)) for c in ("b", "c")]
    await asyncio.sleep(0)

    send.release.set()

    assert await asyncio.gather(first, *later) == ["A", "B", "C"]
    assert send.batches == [["a"], ["b", "c"]]


async def test_an_error_reply_is_raised_to_its_caller_only() -> None:
    coalescer = Coalescer(Recorder())

    results = await asyncio.gather(coalescer.call("ok"), coalescer.call("bad"), return_exceptions=True)

    assert results[0] == "OK"
    assert isinstance(results[1], ValueError)


async def test_a_failed_send_fails_its_batch_and_the_next_call_goes_through() -> None:
    send = Recorder()
    send.fail_next = True
    coalescer = Coalescer(send)

    failed = await asyncio.gather(coalescer.call("x"), coalescer.call("y"), return_exceptions=True)

    assert [type(e) for e in failed] == [ConnectionError, ConnectionError]
    assert await coalescer.call("z") == "Z"


async def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    send = Recorder()
    send.release.clear()
    coalescer = Coalescer(send)
    gone = asyncio.ensure_future(coalescer.call("gone"))
    kept = asyncio.ensure_future(coalescer.call("kept"))
    await asyncio.sleep(0)

    gone.cancel()
    send.release.set()

    assert await kept == "KEPT"
    assert gone.cancelled()
