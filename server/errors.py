"""The one place domain errors become HTTP answers."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from server.hub import TooManyStreams
from taskstore import QueueFull, TaskNotFound, TransitionRejected


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _rejected(_: Request, exc: Exception) -> JSONResponse:
    status = exc.current if isinstance(exc, TransitionRejected) else None
    return JSONResponse({"detail": str(exc), "status": status}, status_code=409)


async def _queue_full(_: Request, exc: Exception) -> JSONResponse:
    retry_after = exc.retry_after if isinstance(exc, QueueFull) else 1
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(retry_after)})


async def _too_many_streams(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(TooManyStreams, _too_many_streams)
    app.add_exception_handler(TaskNotFound, _not_found)
    app.add_exception_handler(TransitionRejected, _rejected)
    app.add_exception_handler(QueueFull, _queue_full)
