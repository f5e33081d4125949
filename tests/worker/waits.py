"""Deadline waits on task state, shared by the worker and reliability tests."""

from __future__ import annotations

import asyncio
from typing import Any

from taskstore import Entry, TaskQueue, TaskStore, decode_state
from taskstore.deadletters import DeadLetter, DeadLetters
from taskstore.depth import queue_depth
from taskstore.topology import Client
from tests.helpers import listen, wait_for

ENDED = ("DONE", "FAILED", "CANCELLED")


async def final(store: TaskStore, task_id: str, timeout: float = 10) -> dict[str, Any]:
    """The task's state once it is terminal."""
    return await reaches(store, task_id, ENDED, timeout)


async def reaches(
    store: TaskStore, task_id: str, statuses: tuple[str, ...], timeout: float = 10
) -> dict[str, Any]:
    """The task's state once its status is one of `statuses`."""

    async def check() -> dict[str, Any] | None:
        state = decode_state(await store.state(task_id))
        return state if state["status"] in statuses else None

    state: dict[str, Any] = await wait_for(check, timeout=timeout, what=f"task {task_id} to be {statuses}")
    return state


async def all_final(store: TaskStore, task_ids: list[str], timeout: float = 30) -> list[dict[str, Any]]:
    """Every task's state once all are terminal (one pipelined read per poll)."""

    async def check() -> list[dict[str, Any]] | None:
        states = [decode_state(raw) for raw in await store.states(task_ids) if raw is not None]
        if len(states) == len(task_ids) and all(s["status"] in ENDED for s in states):
            return states
        return None

    states: list[dict[str, Any]] = await wait_for(
        check, timeout=timeout, interval=0.05, what=f"{len(task_ids)} tasks to end"
    )
    return states


async def dead_letters(letters: DeadLetters, count: int = 1, timeout: float = 10) -> list[DeadLetter]:
    """The dead letters once there are `count`: one is written just after its task's FAILED state."""

    async def check() -> list[DeadLetter] | None:
        found = await letters.list()
        return found if len(found) >= count else None

    found: list[DeadLetter] = await wait_for(check, timeout=timeout, what=f"{count} dead letters")
    return found


async def queue_empty(store: TaskStore) -> bool:
    """Whether every stream entry (of every shard) was acknowledged and deleted."""
    depth = (await queue_depth(store.redis, store.keys)).total
    return depth.pending == 0 and depth.length == 0


async def read_one(queue: TaskQueue, consumer: str) -> Entry:
    """The one waiting entry, read from whichever shard holds it, as `consumer`."""
    found = [e for entries in await queue.read(consumer, [(s, 1) for s in queue.shards]) for e in entries]
    if len(found) != 1:
        raise AssertionError(f"expected one waiting entry, read {len(found)}")
    return found[0]


async def events_until_end(redis: Client, channel: str, started: asyncio.Event) -> list[dict[str, Any]]:
    """Every event published on `channel` up to the first DONE or FAILED; `started` once subscribed."""
    pubsub, get = await listen(redis, channel)
    await get(timeout=2)  # the subscribe confirmation
    started.set()
    events: list[dict[str, Any]] = []
    while not events or events[-1]["status"] not in ("DONE", "FAILED"):
        message = await get(ignore_subscribe_messages=True, timeout=5)
        if message:
            events.append(decode_state(message["data"]))
    await pubsub.aclose()
    return events
