"""The operations page, `GET /dashboard`, and its one streaming connection, `WS /dashboard/ws`.

    accept ─▶ a hub subscriber (1013 over MAX_STREAMS) ─▶ join the shared feed (first frame ready)
           ─▶ sender | receiver | tailer (server/ops/dashboard_session.py): the first to end cancels
              the others ─▶ finally: leave the feed, release every watched task
With API_KEY set the socket needs `?api_key=` (server/access/auth.py closes it 4401 otherwise); the
page itself is open, like `/`, and asks for the key. The socket takes the streams' short path
(server/push/dispatch.py), as /ws does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from pathlib import Path

from fastapi import APIRouter, FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse
from starlette.routing import WebSocketRoute

from server.ops import metrics
from server.ops.dashboard_session import DashboardSession
from server.ops.opsfeed import OpsFeed
from server.ops.tasklist import served_kinds
from server.push.dispatch import SocketApp
from server.push.hub import Hub, TooManyStreams
from server.push.subscriber import SubscriberClosed, TooManyNotices
from server.settings import Settings
from taskstore.index import TaskIndex
from taskstore.tallies import OpsReader
from taskstore.workers import Heartbeats

router = APIRouter()
log = logging.getLogger(__name__)

CLOSE_POLICY = 1008
CLOSE_TRY_LATER = 1013


async def dashboard_socket(websocket: WebSocket) -> None:
    """Stats once a second, the listed tasks' changes as they happen, answers to list ops."""
    state = websocket.app.state
    hub: Hub = state.hub
    feed: OpsFeed = state.ops_feed
    settings: Settings = state.settings
    await websocket.accept()
    try:
        sub = hub.subscriber()
    except TooManyStreams as e:
        await websocket.close(CLOSE_TRY_LATER, str(e))
        return
    session = DashboardSession(websocket, hub, sub, feed, feed.index, served_kinds(settings.kinds))
    try:
        await feed.join(session)
        await _first_completed(
            session.send_forever(settings.send_timeout), session.receive_forever(), session.tail_forever()
        )
    except TooManyNotices:
        await websocket.close(CLOSE_POLICY, "too many frames sent without reading the answers")
    except TimeoutError:
        log.info("dashboard socket closed: a send took over %g s", settings.send_timeout)
        await websocket.close(CLOSE_TRY_LATER, "too slow to read")
    finally:
        feed.leave(session)
        await hub.release(sub)


# A plain Starlette route, like the other sockets (routes/ws.py): server/push/dispatch.py serves
# it ahead of the middleware stack, with the user middleware (API_KEY's access control) around it.
router.routes.append(WebSocketRoute("/dashboard/ws", SocketApp(dashboard_socket), name="dashboard_socket"))


def ops_feed(app: FastAPI, settings: Settings) -> OpsFeed:
    """The process's shared dashboard feed (started by the first dashboard that connects); its
    reader serves GET /stats too."""
    store = app.state.store
    index = TaskIndex(store.redis, store.keys, result_ttl=settings.result_expiry)
    kinds = served_kinds(settings.kinds)
    reader = OpsReader(
        store.redis, store.keys, kinds, result_ttl=settings.result_expiry, on_commands=metrics.ops_reads
    )
    heartbeats = Heartbeats(store.redis, store.keys)
    return OpsFeed(reader, index, heartbeats, gone_after=settings.worker_gone_after)


def mount_page(app: FastAPI, static: Path) -> None:
    page = static / "dashboard" / "index.html"

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(page, headers={"Cache-Control": "no-cache"})


async def _first_completed(*coroutines: Awaitable[None]) -> None:
    """Run the coroutines until one ends; cancel the others (sse-starlette's cancel_on_finish)."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception) and not isinstance(result, WebSocketDisconnect | SubscriberClosed):
            raise result
