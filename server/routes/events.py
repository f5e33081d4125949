"""`GET /tasks/{id}/events`: a task's life as Server-Sent Events.

watch (SUBSCRIBE confirmed, then snapshot) ─▶ 404 | 204 (client already saw the end)
    ─▶ stream: snapshot, then each newer state (`id: <seq>`, `event: task`) ─▶ terminal ─▶ end
client gone / send stuck for SEND_TIMEOUT / shutdown ─▶ the hub's watchdog closes the subscriber
    (and aborts a stuck connection) ─▶ the generator ends ─▶ sse-starlette's closing chunk
the response is done ─▶ release (the stream counted toward MAX_STREAMS until then)
while the generator waits, a live event is sent by the hub itself (server/push/subscriber.py)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Header, Query, Response
from fastapi.routing import APIRoute
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.datastructures import Headers, QueryParams
from starlette.types import Message, Receive, Scope, Send

from server.ops.metrics import StreamMeter
from server.push.connection import connection
from server.push.hub import Hub
from server.push.subscriber import Event, Subscriber, SubscriberClosed, parse_seq
from server.settings import Settings

router = APIRouter(tags=["events"])

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
PING = ServerSentEvent(comment="ping").encode()


async def serve_events(scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /tasks/{task_id}/events` as plain ASGI: no request wrapper, no dependency solving
    (the route is declared below for OpenAPI; server/push/dispatch.py puts it ahead of the
    middleware). Its errors (404, 503) go to the app's exception handlers."""
    after = _seq(Headers(scope=scope).get("last-event-id"))
    after = after or _seq(QueryParams(scope["query_string"]).get("last_event_id"))
    state = scope["app"].state
    response = await _respond(scope["path_params"]["task_id"], after, state.hub, state.settings)
    await response(scope, receive, send)


async def _respond(task_id: str, after: int, hub: Hub, settings: Settings) -> Response:
    sub = hub.subscriber("sse", task_id)
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
    return EventStream(_stream(sub, task_id), sub, hub, settings)


class _EventsRoute(APIRoute):
    # Documented from `task_events`'s signature, served by `serve_events` (as POST /tasks is).
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in (self.methods or ()):
            await serve_events(scope, receive, send)
        else:
            await super().handle(scope, receive, send)


async def task_events(
    task_id: str,
    last_event_id_header: str | None = Header(default=None, alias="Last-Event-ID"),
    last_event_id: str | None = Query(default=None, description="For a browser's first connection."),
) -> Response:
    """Stream the task's current state, then every change; the stream ends after the terminal one."""
    raise RuntimeError("served by serve_events; this signature documents GET /tasks/{id}/events")


router.add_api_route(
    "/tasks/{task_id}/events",
    task_events,
    methods=["GET"],
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The state now, then every change."},
        204: {"description": "The client already saw the terminal event (Last-Event-ID)."},
        404: {"description": "Unknown or expired task."},
        503: {"description": "This API process serves its limit of streams."},
    },
    route_class_override=_EventsRoute,
)


class EventStream(EventSourceResponse):
    """sse-starlette's response, fed events already encoded as SSE bytes, run in the request's
    own task.

    The response start goes through the user middleware (CORS adds its headers there); the events
    go straight to the server's send. Keep-alive pings, the send timeout, the clean end on
    shutdown and noticing that the client left are the hub's watchdog's work, for every stream at
    once. So sse-starlette's `_stream_response` (response start, the body, the closing chunk) is
    all a response runs: not its task group of three tasks (the body, the exit signal, the
    client's disconnect), whose spawning and cancellation were a fifth of a stream's life
    (docs/performance.md, round 3). A HEAD request is sse-starlette's own (headers, no stream).
    """

    def __init__(self, stream: AsyncIterator[bytes], sub: Subscriber, hub: Hub, settings: Settings) -> None:
        super().__init__(stream, headers=STREAM_HEADERS, ping=0)
        # sse-starlette's lock keeps its ping task's sends apart from the body's closing one. There
        # is no ping task here, so it is never contended; anyio's lock still passes through the
        # event loop on every acquire (its checkpoint): 22 us against asyncio's 1 us, about a
        # tenth of a stream's life (docs/performance.md, round 3).
        self._send_lock = asyncio.Lock()  # type: ignore[assignment]  # only used as `async with`
        sub.ping_frame = PING
        sub.sends = "sse"  # while the generator waits, the hub sends its events itself
        self.sub, self.hub = sub, hub
        self.buffer_bytes = settings.stream_buffer_bytes

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        # sse-starlette opens a cancel scope around every send, even with no timeout; here the
        # watchdog times the sends (see _direct_body), so a send is only a send. What the
        # library's version records on failure is kept.
        try:
            await send(message)
        except BaseException:
            self._send_interrupted = True
            raise

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        conn = self.sub.connection = connection(scope, send)
        conn.limit_buffers(self.buffer_bytes)
        try:
            if scope["method"] == "HEAD":
                await super().__call__(scope, receive, send)
            else:
                await self._stream_response(_direct_body(send, conn.send, self.sub))
        finally:
            # Only now is the connection done with: until here the stream counts toward
            # MAX_STREAMS (a HEAD request never starts the generator, so it is not released there).
            await self.hub.release(self.sub)


def _direct_body(send: Send, raw: Send, sub: Subscriber) -> Send:
    """`send` for the response start, the server's own for the body, each send marked for the watchdog."""

    async def send_event(message: Message) -> None:
        if message["type"] != "http.response.body":
            await send(message)
            return
        sub.sending_since = time.monotonic()
        await raw(message)
        sub.sending_since = 0.0
        sub.last_sent = time.monotonic()

    return send_event


async def _stream(sub: Subscriber, task_id: str) -> AsyncIterator[bytes]:
    meter = StreamMeter("sse", task_id)
    try:
        while True:
            item = await sub.next()
            if not isinstance(item, Event):
                yield item  # the keep-alive comment
                continue
            meter.sent(item)
            yield item.sse
            if item.terminal:
                return
    except (SubscriberClosed, OSError):
        return  # closed; the hub sent the terminal event (StreamEnded); or a send it began failed
    finally:
        meter.sent_count += sub.delivered
        meter.close()


def _seq(value: str | None) -> int:
    return (parse_seq(value) if value is not None else None) or 0
