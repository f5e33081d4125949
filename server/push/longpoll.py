"""Long-polling for `GET /tasks/{id}?wait=N&seq=S`: cheap polling for clients without streams.

    watch(after_seq=S) (SUBSCRIBE confirmed, then snapshot)  ─▶ 404 if unknown
        ─▶ snapshot seq > S, or S is a seq the task never had  ─▶ 200 now
        ─▶ terminal at seq <= S (nothing can change any more)  ─▶ 304 now
        ─▶ wait up to N s on the hub ─▶ 200 with the newer state | 304 at the timeout
    finally: release the subscriber

The hub pushes the change; nothing sleeps and re-reads the hash.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Query, Response

from server.push.hub import Hub
from server.push.subscriber import Event, Subscriber, SubscriberClosed, parse_seq

MAX_WAIT = 60.0
JSON = "application/json"

WaitQuery = Annotated[
    float | None,
    Query(
        ge=0,
        description=(
            "Long-poll: hold the request up to this many seconds (longer waits are cut to 60) until "
            "the task's seq moves past `seq` (or past the If-None-Match ETag); 304 when nothing "
            "changed in time. 0 or absent: answer at once."
        ),
    ),
]
SeqQuery = Annotated[
    int | None,
    Query(ge=0, description="With `wait`: the last seq the client has; defaults to If-None-Match's."),
]


async def long_poll(
    hub: Hub, task_id: str, *, wait: float, seq: int | None, if_none_match: str | None
) -> Response:
    """The task's state once its seq passes the client's, or 304 after `wait` seconds."""
    after = seq if seq is not None else etag_seq(if_none_match)
    sub = hub.subscriber()
    try:
        snapshot = await hub.watch(sub, task_id, after_seq=after)
        if snapshot.seq > after or after > snapshot.seq:
            # Newer than the client's, or a seq this task never had: the client resyncs from it.
            return state_response(snapshot)
        if snapshot.terminal:
            return not_modified(snapshot.seq)
        return await _next_change(sub, min(wait, MAX_WAIT), snapshot.seq)
    finally:
        await hub.release(sub)


async def _next_change(sub: Subscriber, wait: float, seq: int) -> Response:
    try:
        item = await asyncio.wait_for(sub.next(), wait)
    except (TimeoutError, SubscriberClosed):
        return not_modified(seq)
    if not isinstance(item, Event):
        return not_modified(seq)
    return state_response(item)


def state_response(event: Event) -> Response:
    headers = {"ETag": f'"{event.seq}"', "Cache-Control": "no-cache"}
    return Response(event.payload, media_type=JSON, headers=headers)


def not_modified(seq: int) -> Response:
    return Response(status_code=304, headers={"ETag": f'"{seq}"', "Cache-Control": "no-cache"})


def etag_seq(if_none_match: str | None) -> int:
    """The largest seq named in an If-None-Match header (`"7"`, `W/"7"`), else 0."""
    tags = (t.strip().removeprefix("W/").strip('"') for t in (if_none_match or "").split(","))
    seqs = [seq for seq in map(parse_seq, tags) if seq is not None]
    return max(seqs, default=0)
