"""POST /tasks is served without the router, by the very middleware stack FastAPI builds.

What the stack does for a submit (413, 422, 429, 503, 401, CORS) is tested through real
requests in tests/server and tests/access; this pins the routing and that the direct stack is
FastAPI's own, layer by layer, so a FastAPI upgrade that changes its stack shows up here.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from starlette.routing import Router
from starlette.types import Receive, Scope, Send

from server.direct import DirectDispatch
from server.main import create_app
from server.routes.tasks import serve_submit
from server.settings import Settings


def _app(**settings: Any) -> Any:
    base = {"redis_url": "redis://127.0.0.1:1/0", "_env_file": None}
    return create_app(Settings(**{**base, **settings}))


def _direct(app: Any) -> DirectDispatch:
    dispatch = app.build_middleware_stack().app.app  # ConnectionScope, StreamDispatch, this
    assert isinstance(dispatch, DirectDispatch)
    return dispatch


def _layers(app: Any) -> list[tuple[type, dict[str, Any]]]:
    """Each layer down the `.app` chain: its class and the settings it acts on."""
    layers = []
    while hasattr(app, "app") and not isinstance(app, Router):
        wanted = ("_exception_handlers", "_status_handlers", "handler", "max_body_size", "debug", "api_key")
        settings = {name: _unbound(getattr(app, name)) for name in wanted if hasattr(app, name)}
        if type(app).__name__ == "CORSMiddleware":
            settings = {"headers": app.simple_headers, "origins": app.allow_origins}
        layers.append((type(app), settings))
        app = getattr(app, "app", None)
    return layers


def _unbound(value: Any) -> Any:
    """Handlers bound to their layer compare by function (each stack has its own layer)."""
    if isinstance(value, dict):
        return {k: getattr(v, "__func__", v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("settings", [{}, {"api_key": "k" * 32, "cors_origins": "http://page.test"}])
def test_the_direct_stack_is_fastapis_without_the_router_and_exit_stack(settings: dict[str, Any]) -> None:
    app = _app(**settings)
    dispatch = _direct(app)
    full = [layer for layer in _layers(dispatch.app) if layer[0] is not AsyncExitStackMiddleware]
    assert len(full) == len(_layers(dispatch.app)) - 1  # the exit stack was there
    direct = _layers(dispatch.stack)
    assert [cls for cls, _ in direct] == [cls for cls, _ in full]
    assert direct == full
    assert len(direct) >= 7  # server errors, telemetry, body limit (three), access, exceptions


@pytest.mark.parametrize(
    ("method", "path", "direct"),
    [
        ("POST", "/tasks", True),
        ("GET", "/tasks", False),  # the task list
        ("POST", "/tasks/", False),  # the router's redirect
        ("POST", "/tasks/abc/resubmit", False),
        ("DELETE", "/tasks", False),
    ],
)
async def test_only_post_tasks_goes_direct(method: str, path: str, direct: bool) -> None:
    dispatch, taken = _direct(_app()), []

    async def marker(scope: Scope, receive: Receive, send: Send) -> None:
        taken.append(scope)

    async def never(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError(f"{method} {path} took the wrong path")

    dispatch.stack, dispatch.app = (marker, never) if direct else (never, marker)
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    await dispatch(scope, _never_receive, _never_send)
    assert len(taken) == 1


def test_the_direct_stack_ends_in_the_submit_handler() -> None:
    innermost = _direct(_app()).stack
    while hasattr(innermost, "app"):
        innermost = innermost.app
    assert innermost is serve_submit


async def _never_receive() -> Any:
    raise AssertionError("nothing is received here")


async def _never_send(message: Any) -> None:
    raise AssertionError("nothing is sent here")
