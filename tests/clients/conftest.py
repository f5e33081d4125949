"""Fixtures for client tests: a worker without retries, servers behind stream-blocking proxies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from server.main import create_app
from server.settings import Settings
from tests.clients.servers import ASGIApp, ServedApp, StreamBlocker, StreamCutter
from worker.runner import Runner


@pytest.fixture
async def worker(start_worker: Callable[..., Runner]) -> Runner:
    """An in-process worker that fails a task at its first error (no retries)."""
    return start_worker(max_retries=0)


ServeBehind = Callable[[Callable[[ASGIApp], Any]], tuple[ServedApp, Any]]


@pytest.fixture
def serve_behind(settings: Settings) -> Iterator[ServeBehind]:
    """Factory: serve `create_app(settings)` wrapped by a proxy-like middleware; stopped after."""
    served: list[ServedApp] = []

    def serve(wrap: Callable[[ASGIApp], Any]) -> tuple[ServedApp, Any]:
        proxy = wrap(create_app(settings))
        server = ServedApp(proxy).start()
        served.append(server)
        return server, proxy

    yield serve
    for server in served:
        server.stop()


@pytest.fixture
def sse_blocked(serve_behind: ServeBehind) -> tuple[ServedApp, StreamBlocker]:
    server, proxy = serve_behind(lambda app: StreamBlocker(app, sse_answer="403"))
    return server, proxy


@pytest.fixture
def streams_blocked(serve_behind: ServeBehind) -> tuple[ServedApp, StreamBlocker]:
    server, proxy = serve_behind(lambda app: StreamBlocker(app, sse_answer="html", block_ws=True))
    return server, proxy


@pytest.fixture
def sse_cut(serve_behind: ServeBehind) -> Callable[[int], tuple[ServedApp, StreamCutter]]:
    def make(events: int) -> tuple[ServedApp, StreamCutter]:
        server, proxy = serve_behind(lambda app: StreamCutter(app, events=events))
        return server, proxy

    return make
