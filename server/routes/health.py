"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from server.deps import HubDep, QueueDep
from server.ops import scrape
from taskstore.topology import REDIS_FAILURE

router = APIRouter(tags=["health"])

LIVE_WORKER_MS = 10_000


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready; the body says which check failed"}})
async def readyz(queue: QueueDep, hub: HubDep, response: Response) -> dict[str, object]:
    """This process can serve: Redis answers and its pub/sub hub is connected.

    `workers` (consumers seen in the last 10 s) is for information only: an API with no worker
    must stay ready, or a queue whose workers scale to zero could never receive the task that
    wakes one. `queue` is the backlog (waiting plus running entries): the sum and each shard's.
    """
    checks: dict[str, object] = {"pubsub": "ok" if hub.healthy else "reconnecting"}
    body: dict[str, object] = {"workers": None}
    try:
        await queue.redis.ping()
        checks["redis"] = "ok"
        body["workers"] = await queue.live_consumers(LIVE_WORKER_MS)
        lengths = await queue.lengths()
        shards = {s.tag or "legacy": n for s, n in zip(queue.shards, lengths, strict=True)}
        body["queue"] = {"length": sum(lengths), "shards": shards}
    except REDIS_FAILURE as e:
        checks["redis"] = f"unreachable: {e}"
    ready = all(v == "ok" for v in checks.values())
    response.status_code = 200 if ready else 503
    return {"status": "ready" if ready else "not ready", "checks": checks, **body}


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {}}}})
async def metrics(request: Request, queue: QueueDep) -> Response:
    """Prometheus metrics: this process's, or every API process's with PROMETHEUS_MULTIPROC_DIR."""
    body = await scrape.render(queue, request.app.state.hub_meter, request.app.state.settings.kinds)
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)
