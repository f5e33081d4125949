"""The API process: `uvicorn --factory server.main:create_app` (what `taskcast-api` runs).

Importing this module configures nothing: logging and metrics are set up by `create_app`.
`server.main:app` still works for `uvicorn server.main:app`: the module's `__getattr__` builds
it on first access.
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from redis.asyncio import BlockingConnectionPool, Redis

from server import errors, openapi
from server.access import redaction
from server.access.auth import AccessControl
from server.ops import logs, metrics
from server.push.dispatch import StreamingFastAPI
from server.push.hub import Hub
from server.routes import dashboard, events, health, operations, tasks, ws
from server.settings import Settings, get_settings
from server.submission import Rules, document
from taskstore import TaskQueue, TaskStore
from taskstore.connection import PackedConnection
from taskstore.idempotency import IdempotencyKeys
from taskstore.topology import Client, Topology, describe, detect, make_client

log = logging.getLogger(__name__)

GC_THRESHOLDS = (100_000, 50, 100)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API with its lifespan (Redis pool, hub); configures logging and metrics for `settings`."""
    settings = settings or get_settings()
    logs.configure(settings.log_level, settings.log_format)
    redaction.install()
    metrics.api_metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        topology = await detect(settings.redis_url, settings.redis_cluster)
        redis = _client(settings, topology)
        keys = settings.keys_for(topology)
        log.info("API on %s", describe(settings.redis_url_for_logs, topology, keys.shard_count))
        app.state.settings = settings
        store = app.state.store = TaskStore(
            redis,
            keys,
            result_ttl=settings.result_expiry,
            cache_ttl=settings.cache_ttl,
            max_queue=settings.max_queue_length,
            retry_after=settings.retry_after,
            wait_replicas=settings.submit_wait_replicas,
            wait_ms=settings.submit_wait_ms,
            coalesce=settings.coalesce,
        )
        # On a cluster the claim has a slot of its own: it goes in a round trip of its own.
        same_slot = not topology.cluster
        app.state.idempotency = IdempotencyKeys(store, settings.idempotency_ttl, same_slot=same_slot)
        app.state.submit_rules = rules
        app.state.queue = TaskQueue(redis, keys)
        # The API's own, not a worker's: tasks are accepted (and /readyz is 200) before any
        # worker ever ran, e.g. while an autoscaler holds the workers at zero. Every kind's.
        for kind in settings.kinds:
            await TaskQueue(redis, keys.of_kind(kind)).ensure_group()
        hub = app.state.hub = Hub(
            settings.redis_url,
            store,
            resync_seconds=settings.hub_resync_seconds,
            max_streams=settings.max_streams,
            send_timeout=settings.send_timeout,
            ping_seconds=settings.sse_ping_seconds,
        )
        await hub.start()
        hub_meter = app.state.hub_meter = metrics.HubMeter(hub).start()
        ops_feed = app.state.ops_feed = dashboard.ops_feed(app, settings)
        # Start-up objects (modules, routes, the OpenAPI schema) never die: moving them out of
        # the collector's generations keeps full collections, the p99 spikes under load, short.
        gc.collect()
        gc.freeze()
        # Each open stream holds a few hundred long-lived objects (its tasks, frames, subscriber),
        # and at the default threshold (700) the collector walked them over and over: at 10,000
        # streams it took most of the CPU of opening them and of a burst (docs/performance.md).
        # Collect the young generation every 100,000 allocations instead.
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            yield
        finally:
            await ops_feed.stop()
            await hub_meter.stop()
            await hub.stop()
            await redis.aclose()

    app = StreamingFastAPI(
        title="taskcast",
        summary="Long-running tasks whose state is pushed over SSE and WebSocket.",
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
        stream_routes=[*events.router.routes, *ws.router.routes, *dashboard.router.routes],
        submit=tasks.serve_submit,
    )
    errors.install(app)
    tokens = app.state.tokens = settings.watch_tokens
    api_key = settings.api_key_value
    rules = Rules(frozenset(settings.kinds), settings.max_delay)
    document(app, rules)
    # Added last = outermost: CORS answers preflights before access control sees them.
    app.add_middleware(
        AccessControl, api_key=api_key, tokens=tokens, allowed_origins=settings.allowed_origins
    )
    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=sorted(settings.allowed_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Last-Event-ID",
                "If-None-Match",
                "Idempotency-Key",
            ],
            expose_headers=["Location", "ETag", "Retry-After"],
        )
    app.include_router(tasks.router)
    app.include_router(operations.router)
    app.include_router(dashboard.router)
    app.include_router(events.router)
    app.include_router(ws.router)
    app.include_router(health.router)
    _mount_page(app, _static_dir(settings.static_dir))
    openapi.declare_security(app, required=api_key is not None)
    return app


def _client(settings: Settings, topology: Topology) -> Client:
    if topology.cluster:
        return make_client(
            settings.redis_url,
            topology,
            max_connections=settings.redis_max_connections,
            client_name="taskcast-api",
        )
    # A blocking pool: a burst waits for a free connection instead of failing.
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        client_name="taskcast-api",
        connection_class=PackedConnection,
    )
    return Redis.from_pool(pool)


def _static_dir(configured: str) -> Path:
    """STATIC_DIR as given, or else relative to the checkout, so any working directory works."""
    path = Path(configured)
    if path.is_dir() or path.is_absolute():
        return path
    return Path(__file__).resolve().parents[1] / path


def _mount_page(app: FastAPI, static: Path) -> None:
    if not static.is_dir():
        return
    app.mount("/static", StaticFiles(directory=static), name="static")
    dashboard.mount_page(app, static)
    index = static / "index.html"

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(index)


@functools.cache
def _default_app() -> FastAPI:
    return create_app()


def __getattr__(name: str) -> FastAPI:
    if name == "app":
        return _default_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
