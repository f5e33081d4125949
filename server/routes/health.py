"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4
from redis.exceptions import RedisError

from server import scrape
from server.deps import HubDep, QueueDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready; the body says which check failed"}})
async def readyz(queue: QueueDep, hub: HubDep, response: Response) -> dict[str, object]:
    """Redis answers, the workers' consumer group exists and the pub/sub hub is connected."""
    checks: dict[str, object] = {"pubsub": "ok" if hub.healthy else "reconnecting"}
    try:
        await queue.redis.ping()
        checks["redis"] = "ok"
        checks["consumer_group"] = "ok" if await queue.has_group() else "missing"
    except (RedisError, OSError) as e:
        checks["redis"] = f"unreachable: {e}"
    ready = all(v == "ok" for v in checks.values())
    response.status_code = 200 if ready else 503
    return {"status": "ready" if ready else "not ready", "checks": checks}


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {}}}})
async def metrics(request: Request, queue: QueueDep) -> Response:
    """Prometheus metrics: this process's, or every API process's with PROMETHEUS_MULTIPROC_DIR."""
    body = await scrape.render(queue, request.app.state.hub_meter)
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)
