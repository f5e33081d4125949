"""Servers for client tests: any ASGI app on a chosen port, and a proxy that blocks streams."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from tests.helpers import ServedApp

__all__ = ["ServedApp", "StreamBlocker"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class StreamBlocker:
    """Like a proxy that will not pass streams: SSE requests get `sse_answer`, WebSocket
    handshakes a 403 when `block_ws`; everything else reaches the app. Counts what it saw."""

    def __init__(self, app: ASGIApp, *, sse_answer: str = "403", block_ws: bool = False) -> None:
        self.app = app
        self.sse_answer = sse_answer
        self.block_ws = block_ws
        self.seen: dict[str, int] = {"sse": 0, "ws": 0, "poll": 0}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "websocket":
            self.seen["ws"] += 1
            if self.block_ws:
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
                return
        elif scope["type"] == "http" and path.endswith("/events"):
            self.seen["sse"] += 1
            await self._refuse(send)
            return
        elif scope["type"] == "http" and path.startswith("/tasks/") and scope["method"] == "GET":
            self.seen["poll"] += 1
        await self.app(scope, receive, send)

    async def _refuse(self, send: Send) -> None:
        if self.sse_answer == "html":
            status, body, kind = 200, b"<html><body>Blocked by policy</body></html>", b"text/html"
        else:
            status, body, kind = int(self.sse_answer), b"Forbidden", b"text/plain"
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", kind)]})
        await send({"type": "http.response.body", "body": body})


class StreamCutter:
    """Like a proxy that cuts streams short: each SSE response ends after `events` events.
    Records the Last-Event-ID of every SSE request."""

    def __init__(self, app: ASGIApp, *, events: int) -> None:
        self.app = app
        self.events = events
        self.last_event_ids: list[str | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").endswith("/events"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        last = headers.get(b"last-event-id")
        self.last_event_ids.append(last.decode() if last is not None else None)
        await self.app(scope, receive, _cut_after(send, self.events))


def _cut_after(send: Send, events: int) -> Send:
    passed = 0
    ended = False

    async def cut(message: Message) -> None:
        nonlocal passed, ended
        if ended:
            return
        if message["type"] == "http.response.body" and passed >= events:
            ended = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if message["type"] == "http.response.body" and b"data:" in message.get("body", b""):
            passed += 1
        await send(message)

    return cut


class LosesFirstAnswer:
    """Like a proxy whose first POST /tasks reaches the app but whose answer is lost on the way
    back: the app's answer is dropped and the client gets a 502. Counts the POSTs it saw."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.posts: list[bytes | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("path") != "/tasks":
            await self.app(scope, receive, send)
            return
        self.posts.append(dict(scope["headers"]).get(b"idempotency-key"))
        if len(self.posts) > 1:
            await self.app(scope, receive, send)
            return

        async def lost(message: Message) -> None:
            return None

        await self.app(scope, receive, lost)
        await send({"type": "http.response.start", "status": 502, "headers": []})
        await send({"type": "http.response.body", "body": b"Bad Gateway"})
