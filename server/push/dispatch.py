"""Streams served ahead of the middleware stack, with the parts of it that apply to them.

    uvicorn ─▶ ConnectionScope ─▶ StreamDispatch ─┬─ a streaming route (GET /tasks/{id}/events,
                                                  │  WS /tasks/{id}/ws, WS /ws), no request body:
                                                  │    the app's own user middleware (CORS, access
                                                  │    control: same classes, same configuration)
                                                  │    ─▶ ExceptionMiddleware (the app's handlers:
                                                  │    404, 503) ─▶ the route's own handler
                                                  └─ anything else: the whole stack and the router

A stream lives for minutes and every frame of the ASGI call under it lives as long: the full
stack (server errors, telemetry, body limit, exception handlers, FastAPI's exit stacks, the
router, FastAPI's request handler and dependency solving) kept 49 coroutines and 11 deques
alive per SSE stream. What it does for a stream is done here by the same code: the user
middleware as configured on the app, the app's exception handlers, the route's `handle` (its
path parameters from the route's own `matches`). A request with a body is not a stream's:
it takes the whole stack, body limit included. The layers that only choose (ConnectionScope,
StreamDispatch, `_serve`) return the next app's coroutine instead of awaiting it, so they keep
no frame alive under a stream. The routes stay declared on the app, so
OpenAPI documents them and the router serves them the same way if this layer is not there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from server.direct import DirectDispatch, direct_stack
from server.push.connection import ConnectionScope

STREAM_ROUTE = "taskcast.stream_route"


class StreamDispatch:
    def __init__(self, app: ASGIApp, streams: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.streams = streams
        self.routes = routes

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not `async`, as ConnectionScope: the chosen app's coroutine is handed back.
        if self._stream_route(scope) is None:
            return self.app(scope, receive, send)
        return self.streams(scope, receive, send)

    def _stream_route(self, scope: Scope) -> BaseRoute | None:
        """The streaming route `scope` fully matches (its path params put in the scope), or None."""
        kind = scope["type"]
        if kind != "websocket" and (kind != "http" or scope["method"] not in ("GET", "HEAD")):
            return None  # POST /tasks, the hottest path, leaves here
        for route in self.routes:
            match, child = route.matches(scope)
            if match is Match.FULL and not _has_body(scope):
                scope.update(child)
                scope[STREAM_ROUTE] = route
                return route
        return None


def _serve(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
    route: BaseRoute = scope[STREAM_ROUTE]
    return route.handle(scope, receive, send)


def _has_body(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if key == b"transfer-encoding" or (key == b"content-length" and value.strip() != b"0"):
            return True
    return False


class SocketApp:
    """A WebSocket handler as its route's ASGI app. Given a plain function, Starlette wraps it
    in two coroutines and an exception-handling layer that live as long as the socket; the
    exception handlers are already around every stream (StreamingFastAPI._streams)."""

    __slots__ = ("handler",)

    def __init__(self, handler: Callable[[WebSocket], Awaitable[None]]) -> None:
        self.handler = handler

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        return self.handler(WebSocket(scope, receive, send))


class StreamingFastAPI(FastAPI):
    """FastAPI with ConnectionScope outside everything and `stream_routes` dispatched ahead of
    the middleware stack. They are the routes as declared (matched by their own paths), so
    their routers are included in the app without a prefix."""

    def __init__(
        self, *, stream_routes: Sequence[BaseRoute] = (), submit: ASGIApp | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.stream_routes = list(stream_routes)
        self.submit = submit  # POST /tasks's handler, served without the router (server/direct.py)

    def build_middleware_stack(self) -> ASGIApp:
        full = super().build_middleware_stack()
        if self.submit is not None:
            full = DirectDispatch(full, direct_stack(self, self.submit), "POST", "/tasks")
        return ConnectionScope(StreamDispatch(full, self._streams(), self.stream_routes))

    def _streams(self) -> ASGIApp:
        """The user middleware, as configured, around the app's exception handlers and `_serve`."""
        handlers = {k: v for k, v in self.exception_handlers.items() if k not in (500, Exception)}
        app: ASGIApp = ExceptionMiddleware(_serve, handlers=handlers, debug=self.debug)
        for middleware in reversed(self.user_middleware):
            app = middleware.cls(app, *middleware.args, **middleware.kwargs)
        return app
