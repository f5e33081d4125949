"""The one place domain errors become HTTP answers."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from server.push.hub import TooManyStreams
from taskstore import QueueFull, TaskNotFound, TransitionRejected
from taskstore.errors import (
    ECHO_LIMIT,
    CannotResubmit,
    DeadLetterNotFound,
    IdempotencyConflict,
    IdempotencyPending,
    clip,
)
from taskstore.topology import UNAVAILABLE


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _rejected(_: Request, exc: Exception) -> JSONResponse:
    status = exc.current if isinstance(exc, TransitionRejected) else None
    return JSONResponse({"detail": str(exc), "status": status}, status_code=409)


async def _cannot_resubmit(_: Request, exc: Exception) -> JSONResponse:
    status = exc.status if isinstance(exc, CannotResubmit) else None
    return JSONResponse({"detail": str(exc), "status": status}, status_code=409)


async def _queue_full(_: Request, exc: Exception) -> JSONResponse:
    retry_after = exc.retry_after if isinstance(exc, QueueFull) else 1
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(retry_after)})


async def _too_many_streams(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    # Redis down, restarting or failing over: the request changed nothing for sure only when it
    # was a read, but either way trying again shortly is the right answer, not a 500.
    return JSONResponse(
        {"detail": f"Redis unavailable: {exc}"}, status_code=503, headers={"Retry-After": "1"}
    )


async def _key_reused(_: Request, exc: Exception) -> JSONResponse:
    # As the IETF draft on Idempotency-Key has it: a key reused with another body is a client
    # error (422); a repeat while the first request is still being processed is a conflict (409).
    if isinstance(exc, IdempotencyConflict):
        msg = f"Value error, {exc}"
        error = {"type": "value_error", "loc": ["header", "idempotency-key"], "msg": msg, "input": None}
        return JSONResponse({"detail": [error]}, status_code=422)
    return JSONResponse({"detail": str(exc)}, status_code=409, headers={"Retry-After": "1"})


async def _invalid(_: Request, exc: Exception) -> Response:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    # FastAPI's own handler failed with a 500 on two `input`s an error echoes: a body that is
    # not UTF-8 (bytes, decoded strictly) and a lone surrogate from JSON ("\ud800"), which has
    # no UTF-8 form. Hence bytes decoded leniently, and ASCII output.
    detail = jsonable_encoder([_bounded(e) for e in errors], custom_encoder={bytes: _lenient_text})
    body = json.dumps({"detail": detail}, ensure_ascii=True)
    return Response(body, status_code=422, media_type="application/json")


def _bounded(error: dict[str, Any]) -> dict[str, Any]:
    """The error with what it echoes of the client (`input`, keys in `loc`) cut to a bounded length."""
    bounded = {**error, "loc": tuple(clip(p) if isinstance(p, str) else p for p in error.get("loc", ()))}
    if "input" in error:
        bounded["input"] = _echo(error["input"])
    return bounded


def _echo(value: Any) -> Any:
    if isinstance(value, bytes):
        value = _lenient_text(value)
    if isinstance(value, str):
        return clip(value)
    try:
        text = json.dumps(value, default=repr)
    except (ValueError, RecursionError):  # nested deeper than json writes, or a cycle
        return "(not shown)"
    return value if len(text) <= ECHO_LIMIT else clip(text)


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(TooManyStreams, _too_many_streams)
    app.add_exception_handler(TaskNotFound, _not_found)
    app.add_exception_handler(DeadLetterNotFound, _not_found)
    app.add_exception_handler(CannotResubmit, _cannot_resubmit)
    app.add_exception_handler(TransitionRejected, _rejected)
    app.add_exception_handler(QueueFull, _queue_full)
    for error in UNAVAILABLE:
        if error is not OSError:
            app.add_exception_handler(error, _unavailable)
    app.add_exception_handler(IdempotencyConflict, _key_reused)
    app.add_exception_handler(IdempotencyPending, _key_reused)
