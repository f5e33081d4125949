"""`GET /tasks/{id}/events`: a task's life as Server-Sent Events.

watch (SUBSCRIBE confirmed, then snapshot) ─▶ 404 | 204 (client already saw the end)
    ─▶ stream: snapshot, then each newer state (`id: <seq>`, `event: task`) ─▶ terminal ─▶ end
client gone / send timeout / shutdown ─▶ the generator is cancelled ─▶ finally: release
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import anyio
from fastapi import APIRouter, Header, Query, Response
from sse_starlette import EventSourceResponse

from server.deps import HubDep, SettingsDep
from server.ops.metrics import StreamMeter
from server.push.hub import Hub
from server.push.subscriber import Event, Subscriber, SubscriberClosed, parse_seq

router = APIRouter(tags=["events"])

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get(
    "/tasks/{task_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The state now, then every change."},
        204: {"description": "The client already saw the terminal event (Last-Event-ID)."},
        404: {"description": "Unknown or expired task."},
        503: {"description": "This API process serves its limit of streams."},
    },
)
async def task_events(
    task_id: str,
    hub: HubDep,
    settings: SettingsDep,
    last_event_id_header: str | None = Header(default=None, alias="Last-Event-ID"),
    last_event_id: str | None = Query(default=None, description="For a browser's first connection."),
) -> Response:
    """Stream the task's current state, then every change; the stream ends after the terminal one."""
    after = _seq(last_event_id_header) or _seq(last_event_id)
    sub = hub.subscriber()
    try:
        snapshot = await hub.watch(sub, task_id, after_seq=after)
    except BaseException:
        await hub.release(sub)
        raise
    if snapshot.terminal and after >= snapshot.seq:
        await hub.release(sub)
        return Response(status_code=204)
    if snapshot.terminal:
        # The whole stream is known: one event, sent without the streaming machinery.
        await hub.release(sub)
        return Response(snapshot.sse, media_type="text/event-stream", headers=STREAM_HEADERS)
    if after > snapshot.seq:  # a seq this task never had: resync from the snapshot
        sub.seen[task_id] = 0
        sub.offer(snapshot)
    shutdown = anyio.Event()
    return EventSourceResponse(
        _stream(hub, sub, shutdown, task_id),
        headers=STREAM_HEADERS,
        ping=settings.sse_ping_seconds,
        send_timeout=settings.send_timeout,
        shutdown_event=shutdown,
        shutdown_grace_period=1,
    )


async def _stream(hub: Hub, sub: Subscriber, shutdown: anyio.Event, task_id: str) -> AsyncIterator[bytes]:
    # On shutdown, end the stream cleanly rather than be cut off: the client then reconnects
    # with Last-Event-ID to another (or the restarted) process.
    closer = asyncio.create_task(_close_on(shutdown, sub))
    meter = StreamMeter("sse", task_id)
    try:
        while True:
            item = await sub.next()
            if not isinstance(item, Event):
                continue
            meter.sent(item)
            yield item.sse
            if item.terminal:
                return
    except SubscriberClosed:
        return
    finally:
        closer.cancel()
        meter.close()
        await hub.release(sub)


async def _close_on(shutdown: anyio.Event, sub: Subscriber) -> None:
    await shutdown.wait()
    sub.close()


def _seq(value: str | None) -> int:
    return (parse_seq(value) if value is not None else None) or 0
