"""Submit, read and cancel tasks."""

from __future__ import annotations

import email.message
import json
from typing import Any

import orjson
from fastapi import APIRouter, Header, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from server import submission
from server.access.tokens import WatchTokens
from server.deps import HubDep, StoreDep
from server.ops.metrics import cancelled, submitted
from server.params import check_demo, loads, may_lose_numbers, unstorable
from server.push.longpoll import SeqQuery, WaitQuery, long_poll
from server.submission import KEY_PATTERN, MAX_KEY_LENGTH, Request, Rules, idempotency_key
from taskstore import Submitted, TaskRequest, TaskState, state_seq
from taskstore.codec import decode_state
from taskstore.demo import plainly_fits
from taskstore.kinds import DEFAULT_KIND

router = APIRouter(tags=["tasks"])

JSON = "application/json"
_JSON_TYPE = (b"content-type", JSON.encode())


async def serve_submit(scope: Scope, receive: Receive, send: Send) -> None:
    """POST /tasks as plain ASGI (also served ahead of the router: server/direct.py)."""
    state = scope["app"].state
    content_type, key_header = _headers(scope)
    request = _parse(await _body(receive), content_type, state.submit_rules)
    # The demo handler serves the default kind (unless HANDLER says otherwise): its limits are
    # checked there only; another kind's params are its own handler's business.
    demo = request.kind == DEFAULT_KIND and state.settings.validate_demo_params
    if demo and not plainly_fits(request.params):
        check_demo(request.params)
    key = idempotency_key(key_header)
    answer = await submission.submit(state.store, state.idempotency, request, key)
    submitted(answer.task_id, answer.cached)
    tokens: WatchTokens | None = state.tokens
    if tokens is not None:
        answer.content["watch_token"] = tokens.mint(answer.task_id)
    await _answer(send, answer.status, orjson.dumps(answer.content), *answer.headers)


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _headers(scope: Scope) -> tuple[str | None, str | None]:
    """Content-Type and Idempotency-Key, in one pass over the headers."""
    content_type = key = None
    for name, value in scope["headers"]:
        lowered = name.lower()
        if lowered == b"content-type":
            content_type = str(value.decode("latin-1"))
        elif lowered == b"idempotency-key":
            key = str(value.decode("latin-1"))
    return content_type, key


async def _answer(send: Send, status: int, body: bytes, *headers: tuple[bytes, bytes]) -> None:
    length = (b"content-length", str(len(body)).encode())
    start = {"type": "http.response.start", "status": status, "headers": [*headers, length, _JSON_TYPE]}
    await send(start)
    await send({"type": "http.response.body", "body": body})


def _parse(body: bytes, content_type: str | None, rules: Rules) -> Request:
    """The request of a valid body: orjson, a few type checks and a number scan, no model, when
    all is plain."""
    if content_type == JSON:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if type(data) is dict:
            request = rules.fast(data)
            # may_lose_numbers: else json.loads reads the literals as written
            if request is not None and not may_lose_numbers(request.params):
                return request
    return rules.check(_validate(body, content_type))


def _validate(body: bytes, content_type: str | None) -> TaskRequest:
    """FastAPI's own body handling, step by step, so a refused body gets the very same 422."""
    if not body:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    value: Any = body
    if content_type and _is_json(content_type):
        value = _json(body)
    try:
        request = TaskRequest.model_validate(value, from_attributes=True)
    except ValidationError as e:
        errors = [{**err, "loc": ("body", *err["loc"])} for err in e.errors(include_url=False)]
        raise RequestValidationError(errors, body=value) from e
    inexact = unstorable(request.params)
    if inexact is not None:
        raise inexact
    return request


def _json(body: bytes) -> Any:
    try:
        return loads(body)
    except json.JSONDecodeError as e:
        error = {"type": "json_invalid", "loc": ("body", e.pos), "msg": "JSON decode error", "input": {}}
        raise RequestValidationError([{**error, "ctx": {"error": e.msg}}], body=e.doc) from e
    except (UnicodeDecodeError, RecursionError) as e:
        # Not UTF-8 (FastAPI would answer 400), or nested deeper than json's stack (500).
        error = {"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error", "input": {}}
        raise RequestValidationError([{**error, "ctx": {"error": str(e)}}]) from e


def _is_json(content_type: str) -> bool:
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class _SubmitRoute(APIRoute):
    # The hottest path of the service: documented from `submit_task`'s signature as usual, but
    # served by `serve_submit` as plain ASGI, without FastAPI's request wrapper, dependency solving,
    # body parsing and response validation (well over half the CPU time of a request). Its
    # errors travel up to the app's exception handlers, so a 422, 413 or 503 is unchanged.
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            await serve_submit(scope, receive, send)
        else:
            await super().handle(scope, receive, send)


async def submit_task(
    body: TaskRequest,
    store: StoreDep,
    idempotency_key: str | None = Header(
        default=None,
        max_length=MAX_KEY_LENGTH,
        pattern=KEY_PATTERN.pattern,
        description="Repeats with this key and body get the same task.",
    ),
) -> Submitted:
    """Queue a task (202 + Location), or answer a repeated request from the cache (200).

    An identical request still in flight answers with that task (`coalesced`); a repeat of an
    Idempotency-Key with the first task (`replayed`), or 422 if its body differs.
    """
    raise RuntimeError("served by serve_submit; this signature documents POST /tasks")


router.add_api_route(
    "/tasks",
    submit_task,
    methods=["POST"],
    status_code=202,
    response_model=Submitted,
    responses={
        200: {"model": Submitted, "description": "Answered from the cache: the task is already DONE."},
        409: {"description": "The first request with this Idempotency-Key is still in progress."},
        413: {"description": "Body larger than MAX_BODY_BYTES."},
        503: {"description": "Queue full; retry after the Retry-After seconds."},
    },
    route_class_override=_SubmitRoute,
)


@router.get(
    "/tasks/{task_id}",
    response_model=TaskState,
    responses={
        304: {"description": "Not modified since the ETag given (or since `seq` within `wait`)"},
        404: {"description": "Unknown or expired"},
    },
)
async def get_task(
    task_id: str,
    store: StoreDep,
    hub: HubDep,
    wait: WaitQuery = None,
    seq: SeqQuery = None,
    if_none_match: str | None = Header(default=None),
) -> Response:
    """The task's current state, the source of truth; ETag from its seq.

    With `wait`, a long-poll: the answer comes as soon as the seq passes `seq`, else 304.
    """
    if wait:
        return await long_poll(hub, task_id, wait=wait, seq=seq, if_none_match=if_none_match)
    raw = await store.state(task_id)
    etag = _etag(decode_state(raw))
    if if_none_match is not None and etag in _etags(if_none_match):
        return Response(status_code=304, headers={"ETag": etag})
    return Response(raw, media_type=JSON, headers={"ETag": etag, "Cache-Control": "no-cache"})


@router.delete(
    "/tasks/{task_id}",
    status_code=202,
    response_model=TaskState,
    responses={
        404: {"description": "Unknown or expired"},
        409: {"description": "Already ended (DONE, FAILED or CANCELLED; the body's `status` says which)"},
    },
)
async def cancel_task(task_id: str, store: StoreDep) -> Response:
    """Cancel a PENDING or RUNNING task; 409 when it already ended."""
    moved = await store.cancel(task_id)
    cancelled(task_id)
    return Response(moved.state, status_code=202, media_type=JSON)


def _etag(state: dict[str, Any]) -> str:
    return f'"{state_seq(state)}"'


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
