"""Property-based fuzzing of the HTTP API against a real uvicorn and Redis.

- every operation of the OpenAPI schema gets schema-valid and schema-violating requests (by
  schemathesis), for unknown ids and real tasks: no 5xx, only documented statuses and bodies;
- whatever a client sends as a seq (Last-Event-ID, If-None-Match, ?seq=): no 5xx;
- whatever body POST /tasks gets: no 5xx, and when refused, nothing written to Redis.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import given, note, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from schemathesis import GenerationMode

from server.settings import Settings
from taskstore import Keys, TaskQueue
from tests.conftest import LiveServer
from tests.fuzz.strategies import FUZZ, header_seq_texts, json_values, seq_texts

OPERATIONS = [
    "POST /tasks",
    "GET /tasks/{task_id}",
    "DELETE /tasks/{task_id}",
    "GET /tasks/{task_id}/events",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /tasks",
    "GET /workers",
    "GET /stats",
    "GET /deadletters",
    "POST /deadletters/{ident}/requeue",
    "POST /tasks/{task_id}/resubmit",
]
LONG_POLL_CAP = 0.2  # seconds: the schema allows any wait (the server cuts it to 60)
JSON_TYPE = "application/json"
MAX_BODY: int = Settings.model_fields["max_body_bytes"].default  # live_server's MAX_BODY_BYTES


@pytest.fixture
def api_schema(live_server: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live_server.url}/openapi.json")


@pytest.fixture
def tasks(live_server: LiveServer) -> dict[str, str]:
    """A PENDING and a CANCELLED task, and the workers' consumer group (so /readyz is ready)."""
    asyncio.run(_ensure_group(live_server))
    with httpx.Client(base_url=live_server.url) as client:
        pending = client.post("/tasks", json={"prompt": "fuzz pending"}).json()["task_id"]
        ended = client.post("/tasks", json={"prompt": "fuzz ended"}).json()["task_id"]
        client.delete(f"/tasks/{ended}").raise_for_status()
    return {"pending": pending, "ended": ended}


async def _ensure_group(server: LiveServer) -> None:
    redis = Redis.from_url(server.settings.redis_url)
    try:
        await TaskQueue(redis, _keys(server)).ensure_group()
    finally:
        await redis.aclose()


def _keys(server: LiveServer) -> Keys:
    return Keys(prefix=server.settings.key_prefix, queue=server.settings.queue_key)


def _cap_wait(case: schemathesis.Case) -> schemathesis.Case:
    wait = (case.query or {}).get("wait")
    if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > LONG_POLL_CAP:
        case.query = {**case.query, "wait": LONG_POLL_CAP}
    return case


def _fresh_key(case: schemathesis.Case) -> schemathesis.Case:
    # A key reused with another body is a 422 by design (tests/server/test_submission.py), which
    # schemathesis would count as a schema-valid request refused: each generated key is made new.
    key = next((k for k in case.headers or {} if k.lower() == "idempotency-key"), None)
    if key is not None and case.headers is not None:
        case.headers = {**case.headers, key: f"{case.headers[key]}-{uuid.uuid4()}"}
    return case


def _cases(operation: schemathesis.APIOperation, tasks: dict[str, str]) -> st.SearchStrategy[Any]:
    # A live task's event stream only ends with the task, so SSE is fuzzed on an ended one.
    ids = [tasks["ended"]] if operation.path.endswith("/events") else list(tasks.values())
    strategies = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategies.append(operation.as_strategy(mode))
        if "{task_id}" in operation.path:
            strategies += [operation.as_strategy(mode, path_parameters={"task_id": i}) for i in ids]
    return st.one_of(strategies).map(_cap_wait).map(_fresh_key)


def test_every_operation_of_the_schema_is_fuzzed(api_schema: schemathesis.BaseSchema) -> None:
    labels = {result.ok().label for result in api_schema.get_all_operations()}

    assert labels == set(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_answers_as_its_schema_documents(
    label: str, api_schema: schemathesis.BaseSchema, tasks: dict[str, str], server_errors: list[str]
) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None

    @settings(FUZZ, max_examples=60)
    @given(case=_cases(operation, tasks))
    def answers_as_documented(case: schemathesis.Case) -> None:
        errors_before = len(server_errors)
        case.call_and_validate(timeout=5)
        assert server_errors[errors_before:] == []

    answers_as_documented()


# -- seqs from clients ----------------------------------------------------------------------------


@settings(FUZZ, max_examples=100)
@given(seq=seq_texts, header=header_seq_texts)
async def test_any_seq_a_client_sends_gets_no_server_error(
    seq: str, header: str, client: httpx.AsyncClient, tasks: dict[str, str], server_errors: list[str]
) -> None:
    errors_before = len(server_errors)
    pending, ended = f"/tasks/{tasks['pending']}", f"/tasks/{tasks['ended']}"
    raw_header = header.encode("latin-1")

    polls = [
        await client.get(pending, params={"wait": 0.05}, headers={"If-None-Match": raw_header}),
        await client.get(pending, params={"wait": 0.05, "seq": seq}),
        await client.get(pending, headers={"If-None-Match": raw_header}),
    ]
    streams = [
        await client.get(f"{ended}/events", params={"last_event_id": seq}),
        await client.get(f"{ended}/events", headers={"Last-Event-ID": raw_header}),
    ]

    assert {p.status_code for p in polls} <= {200, 304, 422}
    assert {s.status_code for s in streams} <= {200, 204}
    assert server_errors[errors_before:] == []


# -- nothing written for rejected input -----------------------------------------------------------

surrogates = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@dataclass(frozen=True)
class Oversize:
    """A valid body of `size` prompt characters, built at send time (a short repr for Hypothesis)."""

    size: int

    def encode(self) -> bytes:
        return b'{"prompt": "' + b"x" * self.size + b'"}'


bodies = st.one_of(
    json_values.map(_json),
    st.fixed_dictionaries({"prompt": json_values}, optional={"params": json_values}).map(_json),
    st.fixed_dictionaries({"prompt": st.text(max_size=3)}, optional={"params": json_values}).map(_json),
    st.fixed_dictionaries({"prompt": surrogates}, optional={"params": st.just({})}).map(_json),
    st.fixed_dictionaries({"prompt": st.just("p"), "params": st.dictionaries(surrogates, surrogates)}).map(
        _json
    ),
    st.integers(4001, 4100).map(lambda n: _json({"prompt": "x" * n})),
    st.integers(200, 2000).map(lambda n: b'{"prompt": "p", "params": {"a": ' + _nested(n) + b"}}"),
    st.integers(200, 1500).map(_nested),
    st.builds(Oversize, st.integers(MAX_BODY, MAX_BODY + 4096)),
    st.binary(max_size=64),
)
content_types = st.sampled_from(
    [JSON_TYPE, "application/json; charset=utf-8", "application/vnd.x+json", "text/plain", "", None]
)


@settings(FUZZ, max_examples=150)
@given(body=bodies, content_type=content_types)
async def test_any_body_gets_no_server_error_and_a_refused_one_writes_nothing(
    body: bytes | Oversize,
    content_type: str | None,
    live_server: LiveServer,
    client: httpx.AsyncClient,
    redis: Redis,
    server_errors: list[str],
) -> None:
    errors_before = len(server_errors)
    queue = TaskQueue(redis, _keys(live_server))
    keys_before, length_before = await redis.dbsize(), await queue.backlog()
    headers = {} if content_type is None else {"content-type": content_type}
    content = body.encode() if isinstance(body, Oversize) else body
    note(f"POST /tasks, content-type {content_type!r}, {len(content)} bytes: {content[:80]!r}")

    status, answer = await _submit(client, content, headers)
    detail = answer.get("detail") if isinstance(answer, dict) else answer

    assert status in (202, 413, 422), detail
    coalesced = status == 202 and answer.get("coalesced") is True
    if status == 202 and not coalesced:
        assert await queue.backlog() == length_before + 1
    else:  # refused, or joined an identical request still in flight: nothing written
        assert (await redis.dbsize(), await queue.backlog()) == (keys_before, length_before)
    if status == 422:
        assert detail[0]["loc"][0] == "body"
    assert server_errors[errors_before:] == []


async def _submit(client: httpx.AsyncClient, content: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    """Status and JSON answer of a POST /tasks (413 when an oversize body's connection was reset)."""
    try:
        response = await client.post("/tasks", content=content, headers=headers)
    except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as e:
        # The 413 goes out before the body is read, then the server closes the connection; the
        # unread rest of the body can make the kernel reset it before the client reads the 413.
        if len(content) <= MAX_BODY:
            raise
        return 413, repr(e)
    if response.headers.get("content-type") != JSON_TYPE:
        return response.status_code, response.text
    # json, not orjson: a 422 echoes a deep body as its `input`, deeper than orjson reads (1024).
    return response.status_code, json.loads(response.content)
