"""The streaming routes are served ahead of the middleware stack, and nothing else is.

What they do there (access control, CORS, 404/503, the contract) is tested through a live
server in tests/push/test_sse.py, test_ws.py and tests/access/; this pins the routing.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from server.main import create_app
from server.push.dispatch import StreamDispatch
from server.settings import Settings


def _dispatch() -> StreamDispatch:
    app = create_app(Settings(redis_url="redis://127.0.0.1:1/0", _env_file=None))  # type: ignore[call-arg]
    stack: Any = app.build_middleware_stack()
    dispatch = stack.app
    assert isinstance(dispatch, StreamDispatch)
    return dispatch


def _scope(kind: str, path: str, method: str = "GET", **headers: str) -> Scope:
    raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    scope: Scope = {"type": kind, "path": path, "root_path": "", "headers": raw, "query_string": b""}
    if kind == "http":
        scope["method"] = method
    return scope


@pytest.mark.parametrize(
    ("kind", "path", "method"),
    [
        ("http", "/tasks/abc/events", "GET"),
        ("websocket", "/tasks/abc/ws", "GET"),
        ("websocket", "/ws", "GET"),
        ("websocket", "/dashboard/ws", "GET"),
    ],
)
async def test_streams_take_the_short_path(kind: str, path: str, method: str) -> None:
    dispatch, taken = _dispatch(), []

    async def marker(scope: Scope, receive: Receive, send: Send) -> None:
        taken.append(scope)

    dispatch.streams, dispatch.app = marker, _never
    await dispatch(_scope(kind, path, method), _never_receive, _never_send)
    assert len(taken) == 1
    if "abc" in path:
        assert taken[0]["path_params"] == {"task_id": "abc"}


@pytest.mark.parametrize(
    ("kind", "path", "method", "headers"),
    [
        ("http", "/tasks", "POST", {}),
        ("http", "/tasks/abc", "GET", {}),
        ("http", "/tasks/abc/events", "POST", {}),  # the router's 405
        ("http", "/tasks/abc/events", "HEAD", {}),  # FastAPI's GET routes answer HEAD 405
        ("http", "/tasks/abc/events", "GET", {"content_length": "10"}),  # the body limit's
        ("http", "/tasks/abc/events", "GET", {"transfer_encoding": "chunked"}),
        ("http", "/dashboard", "GET", {}),  # the page itself
    ],
)
async def test_everything_else_takes_the_whole_stack(
    kind: str, path: str, method: str, headers: dict[str, str]
) -> None:
    dispatch, taken = _dispatch(), []

    async def marker(scope: Scope, receive: Receive, send: Send) -> None:
        taken.append(scope)

    dispatch.streams, dispatch.app = _never, marker
    await dispatch(_scope(kind, path, method, **headers), _never_receive, _never_send)
    assert len(taken) == 1


async def _never(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError(f"{scope['path']} took the wrong path")


async def _never_receive() -> Any:
    raise AssertionError("nothing is received here")


async def _never_send(message: Any) -> None:
    raise AssertionError("nothing is sent here")
