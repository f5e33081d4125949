"""What POST /tasks does with a body it could parse: the kind and delay checked against the
settings, the Idempotency-Key honoured, and the answer shaped for each outcome.

    body ─▶ Rules (kind in TASK_KINDS, 0 <= delay <= MAX_DELAY) ─▶ else 422 naming the field
    no key ─────────────────────────────▶ TaskStore.submit
    Idempotency-Key ─▶ IdempotencyKeys ─▶ TaskStore.submit once; repeats get its task id
    answer:  cached 200 DONE · queued / scheduled 202 PENDING
             coalesced / replayed: the task's current status (202 in flight, 200 ended)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from taskstore import Submission, TaskRequest, TaskStatus, TaskStore, codec, decode_state, is_terminal
from taskstore.idempotency import IdempotencyKeys, Replayed
from taskstore.kinds import DEFAULT_KIND
from taskstore.store import Claim

MAX_PROMPT = next(
    m.max_length for m in TaskRequest.model_fields["prompt"].metadata if hasattr(m, "max_length")
)
MAX_KEY_LENGTH = 255
KEY_PATTERN = re.compile(r"^[!-~]([ -~]*[!-~])?$")
Headers = list[tuple[bytes, bytes]]


class Request(NamedTuple):  # a tuple: the hot path builds one per POST
    prompt: str
    params: dict[str, Any]
    kind: str = DEFAULT_KIND
    delay: float = 0.0

    def fingerprint(self) -> tuple[str, str]:
        """The signature, and what a repeat of an Idempotency-Key must match: the whole request,
        delay included."""
        signature = codec.signature(codec.encode_request(self.prompt, self.params, self.kind))
        return signature, codec.fingerprint(signature, self.delay)


@dataclass(frozen=True, slots=True)
class Rules:
    kinds: frozenset[str]
    max_delay: float

    def fast(self, data: dict[str, Any]) -> Request | None:
        """The request when every field is plainly right (the common case); else None."""
        prompt, params = data.get("prompt"), data.get("params", {})
        kind, delay = data.get("kind", DEFAULT_KIND), data.get("delay", 0.0)
        if type(prompt) is not str or not 0 < len(prompt) <= MAX_PROMPT or type(params) is not dict:
            return None
        if type(kind) is not str or kind not in self.kinds:
            return None
        if type(delay) not in (int, float) or not 0 <= delay <= self.max_delay:
            return None
        return Request(prompt, params, kind, float(delay))

    def check(self, body: TaskRequest) -> Request:
        """The request of a body the model accepted; 422 for a kind or delay the settings refuse."""
        kind = DEFAULT_KIND if body.kind is None else body.kind
        if kind not in self.kinds:
            accepted = ", ".join(sorted(self.kinds))
            what = "kind is required" if body.kind is None else f"unknown kind {kind!r}"
            _refuse("kind", f"Value error, {what}; TASK_KINDS accepts: {accepted}", body.kind)
        delay = body.delay or 0.0
        if delay > self.max_delay:
            _refuse("delay", f"Value error, delay is at most MAX_DELAY = {self.max_delay:g} s", delay)
        return Request(body.prompt, body.params, kind, delay)


def document(app: FastAPI, rules: Rules) -> None:
    """Put this process's kinds and MAX_DELAY into the OpenAPI schema of the request body."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        body = schema["components"]["schemas"]["TaskRequest"]
        kind, delay = body["properties"]["kind"], body["properties"]["delay"]
        kind["anyOf"][0]["enum"] = sorted(rules.kinds)
        delay["anyOf"][0]["maximum"] = rules.max_delay
        if DEFAULT_KIND not in rules.kinds:
            kind.pop("anyOf")
            kind.update({"type": "string", "enum": sorted(rules.kinds)})
            body["required"].append("kind")
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def idempotency_key(header: str | None) -> str | None:
    """The key of an Idempotency-Key header: visible ASCII, inner spaces allowed; the quotes of a
    structured-field string (the draft's form) are dropped."""
    if header is None:
        return None
    if len(header) > MAX_KEY_LENGTH or not KEY_PATTERN.match(header):
        msg = f"Value error, Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters"
        error = {"type": "value_error", "loc": ("header", "idempotency-key"), "msg": msg, "input": None}
        raise RequestValidationError([error])
    if len(header) > 2 and header[0] == header[-1] == '"':
        return header[1:-1]
    return header


class Answer(NamedTuple):
    status: int
    content: dict[str, Any]
    headers: Headers

    @property
    def task_id(self) -> str:
        return str(self.content["task_id"])

    @property
    def cached(self) -> bool:
        return bool(self.content["cached"])


async def submit(store: TaskStore, keys: IdempotencyKeys, request: Request, key: str | None) -> Answer:
    """Submit `request` (once per Idempotency-Key) and shape the answer."""
    outcome: Submission | Replayed
    if key is None:
        outcome = await _store_submit(store, request, None)
    else:
        outcome = await keys.submit(key, request.fingerprint, partial(_store_submit, store, request))
    if isinstance(outcome, Replayed):
        return _existing(outcome.task_id, outcome.state, {"replayed": True})
    if outcome.coalesced:
        return _existing(outcome.task_id, await store.state(outcome.task_id), {"coalesced": True})
    if outcome.cached:
        result = orjson.Fragment(outcome.result_json or b"null")
        content = {"task_id": outcome.task_id, "status": TaskStatus.DONE, "cached": True, "result": result}
        return Answer(200, content, [])
    content = {"task_id": outcome.task_id, "status": TaskStatus.PENDING, "cached": False}
    if outcome.run_at is not None:
        content["run_at"] = outcome.run_at
    return Answer(202, content, _location(outcome.task_id))


async def _store_submit(
    store: TaskStore, request: Request, task_id: str | None, claim: Claim | None = None
) -> Submission:
    prompt, params, kind, delay = request
    try:
        return await store.submit(prompt, params, kind=kind, delay=delay, task_id=task_id, claim=claim)
    except orjson.JSONEncodeError as e:
        raise _unstorable(e) from e


def _existing(task_id: str, raw: bytes, flag: dict[str, bool]) -> Answer:
    """The answer naming a task that already exists: its current status (and result when DONE)."""
    state = decode_state(raw)
    content = {"task_id": task_id, "status": state["status"], "cached": state["cached"], **flag}
    if state["status"] == TaskStatus.DONE:
        content["result"] = state["result"]
    if is_terminal(state):
        return Answer(200, content, [])
    return Answer(202, content, _location(task_id))


def _location(task_id: str) -> Headers:
    return [(b"location", f"/tasks/{task_id}".encode())]


def _refuse(field: str, msg: str, value: Any) -> None:
    raise RequestValidationError(
        [{"type": "value_error", "loc": ("body", field), "msg": msg, "input": value}]
    )


def _unstorable(e: orjson.JSONEncodeError) -> RequestValidationError:
    # What a JSON parser let through but orjson cannot write: a lone surrogate ("\ud800", only
    # json.loads accepts it) or nesting deeper than orjson.dumps's 254 levels.
    msg = f"Value error, params cannot be stored as JSON: {e}"
    return RequestValidationError(
        [{"type": "value_error", "loc": ("body", "params"), "msg": msg, "input": None}]
    )
