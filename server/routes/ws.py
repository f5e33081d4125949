"""WebSockets: `/tasks/{id}/ws` for one task, `/ws` for many on one socket.

Each socket has one sender (the only writer, in the route's own task) and one receiver (a task
beside it); the first to finish ends the other, and `finally` releases the hub subscription.
Frames go straight to the server's send (server/push/connection.py); while the sender waits,
the hub sends live events itself (server/push/subscriber.py). A send stuck for SEND_TIMEOUT
(a client that stopped reading) is the hub's watchdog's: it aborts the connection, which ends
the send, and the socket unwinds without a close frame (the client could not read one).

    /tasks/{id}/ws   accept ─▶ watch ─▶ 4404 if unknown ─▶ events ─▶ terminal ─▶ close 1000
    /ws              receiver: {"op": "subscribe"|"unsubscribe", "task_id", "last_seq"?, "token"?}
                                a watch-only socket's subscribe needs a token for the task
                                (server/access/auth.py), else an error frame with code 401
                                bad frame ─▶ {"op": "error", ...} (socket stays open)
                     sender:   events (no "op" key) and control frames; after a task's
                                terminal event its subscription ends by itself
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Coroutine
from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocketState

from server.access.auth import frame_refusal
from server.ops.metrics import StreamMeter
from server.push.connection import connection
from server.push.dispatch import SocketApp
from server.push.hub import Hub, TooManyStreams
from server.push.subscriber import Event, StreamEnded, Subscriber, SubscriberClosed, TooManyNotices
from server.routes.ws_frames import Access, apply_frame, resume_watch, seq_of
from server.settings import Settings
from taskstore import TaskNotFound

router = APIRouter()

CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TRY_LATER = 1013
CLOSE_NOT_FOUND = 4404


async def task_socket(websocket: WebSocket) -> None:
    """The task's events as JSON text frames; closes with 1000 after the terminal one."""
    hub, settings = _hub(websocket), _settings(websocket)
    task_id: str = websocket.path_params["task_id"]
    sub = await _accept(websocket, hub, settings, "ws", task_id)
    if sub is None:
        return
    last_seq = seq_of(websocket.query_params.get("last_seq"))
    try:
        snapshot = await resume_watch(hub, sub, task_id, last_seq)
    except TaskNotFound as e:
        await hub.release(sub)
        await websocket.close(CLOSE_NOT_FOUND, _reason(str(e)))
        return
    if snapshot.terminal and last_seq == snapshot.seq:  # the client saw the end (SSE: 204)
        await hub.release(sub)
        await websocket.close(CLOSE_NORMAL)
        return
    meter = StreamMeter("ws", task_id)
    try:
        await _while_receiving(
            _drain(websocket), sub, _send_events(websocket, sub, hub, meter, close_on_terminal=True)
        )
    finally:
        meter.sent_count += sub.delivered
        meter.close()
        await hub.release(sub)


async def multiplexed_socket(websocket: WebSocket) -> None:
    """Many tasks on one socket: subscribe and unsubscribe with JSON frames."""
    hub, settings = _hub(websocket), _settings(websocket)
    sub = await _accept(websocket, hub, settings, "ws_multiplexed")
    if sub is None:
        return
    meter = StreamMeter("ws_multiplexed")
    try:
        await _while_receiving(
            _receive_ops(websocket, sub, settings, hub),
            sub,
            _send_events(websocket, sub, hub, meter, close_on_terminal=False),
        )
    finally:
        meter.sent_count += sub.delivered
        meter.close()
        await hub.release(sub)


# Plain Starlette routes: the sockets need nothing of FastAPI's dependency solving, and
# server/push/dispatch.py serves them ahead of the middleware stack.
router.routes += [
    WebSocketRoute("/tasks/{task_id}/ws", SocketApp(task_socket), name="task_socket"),
    WebSocketRoute("/ws", SocketApp(multiplexed_socket), name="multiplexed_socket"),
]


async def _accept(
    websocket: WebSocket, hub: Hub, settings: Settings, transport: str, task_id: str | None = None
) -> Subscriber | None:
    """Give the socket a subscriber, then accept it; None (socket closed 1013) over MAX_STREAMS.

    The subscriber comes first, so an accepted socket counts toward MAX_STREAMS even before it
    subscribes to anything.
    """
    try:
        sub = hub.subscriber(transport, task_id)
    except TooManyStreams as e:
        await websocket.accept()
        await websocket.close(CLOSE_TRY_LATER, str(e))
        return None
    try:
        await websocket.accept()
    except BaseException:
        await hub.release(sub)
        raise
    sub.connection = connection(websocket.scope, websocket.send)
    sub.connection.limit_buffers(settings.stream_buffer_bytes)
    sub.sends = "ws"  # while the sender waits, the hub sends live events itself
    return sub


async def _send_events(
    websocket: WebSocket,
    sub: Subscriber,
    hub: Hub,
    meter: StreamMeter,
    *,
    close_on_terminal: bool,
) -> None:
    while True:
        try:
            item = await sub.next()
        except StreamEnded:  # the hub sent the terminal event (a one-task socket's only)
            await websocket.close(CLOSE_NORMAL)
            return
        except SubscriberClosed:
            if _open(websocket, sub):  # closed by the hub: the server is shutting down
                await websocket.close(CLOSE_TRY_LATER, "server shutting down")
            return
        except OSError:
            return  # a send the hub began failed: the client is gone
        frame = item.text if isinstance(item, Event) else item.decode()
        meter.sent(item)
        if not await _send_text(sub, frame):
            return  # the client is gone, or the watchdog let it go
        if isinstance(item, Event) and item.terminal:
            if close_on_terminal:
                await websocket.close(CLOSE_NORMAL)
                return
            await hub.unwatch(sub, item.task_id)


def _open(websocket: WebSocket, sub: Subscriber) -> bool:
    """Neither side has closed the socket (nor has the watchdog aborted it)."""
    connected = WebSocketState.CONNECTED
    if websocket.application_state != connected or websocket.client_state != connected:
        return False
    return sub.connection is None or not sub.connection.closing


async def _send_text(sub: Subscriber, frame: str) -> bool:
    """Send one frame through the server's own send, marked for the watchdog; False once gone.

    A send that finds the buffers full waits; after SEND_TIMEOUT the watchdog aborts the
    connection, which ends the wait (ClientDisconnected, an OSError) without a traceback.
    """
    conn = sub.connection
    if conn is None:
        raise RuntimeError(f"{sub} has no connection: it was not accepted through _accept()")
    sub.sending_since = time.monotonic()
    try:
        await conn.send({"type": "websocket.send", "text": frame})
    except OSError:
        return False
    finally:
        sub.sending_since = 0.0
    sub.last_sent = time.monotonic()
    return True


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, to notice when it goes away."""
    try:
        while True:
            await _receive_text(websocket)
    except WebSocketDisconnect:
        return


async def _receive_text(websocket: WebSocket) -> str | None:
    """The next frame's text, None for a binary frame; WebSocketDisconnect once the client left.

    Starlette's `receive_text()` raises KeyError on a binary frame, which crashed the handler.
    """
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", CLOSE_NORMAL), message.get("reason"))
    text: str | None = message.get("text")
    return text


async def _receive_ops(websocket: WebSocket, sub: Subscriber, settings: Settings, hub: Hub) -> None:
    access: Access = partial(frame_refusal, websocket.scope, websocket.app.state.tokens)
    try:
        while True:
            text = await _receive_text(websocket)
            with sub.answering():  # "subscribed" goes out before the task's first event
                reply = await apply_frame(text, sub, settings, hub, access)
                if reply is not None:
                    sub.notify(orjson.dumps(reply))
    except WebSocketDisconnect:
        return
    except TooManyNotices:
        await websocket.close(CLOSE_POLICY, "too many unread error frames")


async def _while_receiving(
    receiver: Coroutine[Any, Any, None], sub: Subscriber, sender: Awaitable[None]
) -> None:
    """Send in this task while `receiver` reads in its own; the first to end ends the other.

    The receiver ending (client gone, or a policy close) closes the subscriber, which ends the
    sender. The sender ending (terminal event, shutdown, client gone) cancels the receiver. One
    task per socket besides the server's own, not two (sse-starlette's cancel_on_finish, leaner).
    """
    receiving = asyncio.ensure_future(receiver)
    receiving.add_done_callback(lambda _: sub.close())
    try:
        await sender
    finally:
        receiving.cancel()
        (result,) = await asyncio.gather(receiving, return_exceptions=True)
    if isinstance(result, Exception) and not isinstance(result, WebSocketDisconnect):
        raise result


def _hub(websocket: WebSocket) -> Hub:
    hub: Hub = websocket.app.state.hub
    return hub


def _settings(websocket: WebSocket) -> Settings:
    settings: Settings = websocket.app.state.settings
    return settings


def _reason(text: str) -> str:
    """`text` cut to the 123 bytes a close frame's reason may hold (more fails the close)."""
    return text.encode()[:123].decode(errors="ignore")
