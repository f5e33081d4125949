"""POST /tasks served without the router: the whole middleware stack, then its handler at once.

    ... StreamDispatch ─▶ DirectDispatch ─┬─ POST /tasks: the stack FastAPI builds, as built
                                          │  (server errors, exception telemetry, body limit,
                                          │  the user middleware, the app's exception handlers)
                                          │  ─▶ the handler
                                          └─ anything else: the whole stack and the router

The router matches a request against every route in turn, and FastAPI's route chain under it
(its included-router wrappers, the AsyncExitStack that only closes files, the route's `handle`)
cost about a third of a submit's CPU. POST /tasks has one handler and no dependencies, so it is
sent there directly. Every layer that acts on a request (413, 422, 429, 503, CORS, the API key)
is the same class with the same arguments as in the full stack; `tests/server/test_direct.py`
checks that the two stacks agree layer by layer, so a FastAPI upgrade that changes its stack
shows up there. The route stays declared on the app: OpenAPI documents it, and the router
serves it the same way (server/routes/tasks.py) if this layer is not there.
"""

from __future__ import annotations

from collections.abc import Awaitable

from fastapi import FastAPI
from fastapi._body_limit import AppBodyLimitMiddleware
from fastapi.telemetry._asgi import ExceptionTelemetryMiddleware
from starlette._utils import get_route_path
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

# FastAPI's own layers above and below the user middleware (FastAPI.build_middleware_stack),
# private classes: the lockfile pins them, and the test above compares the stacks.
OUTER = (ServerErrorMiddleware, ExceptionTelemetryMiddleware, AppBodyLimitMiddleware)


class DirectDispatch:
    """`method path` (an exact path) to `stack`, everything else to `app`."""

    def __init__(self, app: ASGIApp, stack: ASGIApp, method: str, path: str) -> None:
        self.app = app
        self.stack = stack
        self.method = method
        self.path = path

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not `async`, as the layers around it: the chosen app's coroutine is handed back.
        if scope["type"] == "http" and scope["method"] == self.method and get_route_path(scope) == self.path:
            return self.stack(scope, receive, send)
        return self.app(scope, receive, send)


def direct_stack(app: FastAPI, handler: ASGIApp) -> ASGIApp:
    """FastAPI's middleware stack for `app` around `handler` instead of the router, without the
    AsyncExitStackMiddleware (it closes files that dependencies open; `handler` has none)."""
    error_handler, handlers = None, {}
    for key, value in app.exception_handlers.items():  # as FastAPI splits them
        if key in (500, Exception):
            error_handler = value
        else:
            handlers[key] = value
    stack: ASGIApp = ExceptionMiddleware(handler, handlers=handlers, debug=app.debug)
    for middleware in reversed(app.user_middleware):
        stack = middleware.cls(stack, *middleware.args, **middleware.kwargs)
    stack = AppBodyLimitMiddleware(stack, max_body_size=app.max_body_size)
    stack = ExceptionTelemetryMiddleware(stack)
    return ServerErrorMiddleware(stack, handler=error_handler, debug=app.debug)
