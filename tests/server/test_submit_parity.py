"""POST /tasks's fast path (server/routes/tasks.py serves it as raw ASGI) against a stock FastAPI
route declared with the same model, body by body: the same status and the same body.

Both apps share the project's exception handlers (server/errors.py), so what is compared is the
body handling and the errors it raises, which the fast path copies from FastAPI by hand. A FastAPI
upgrade that changes either shows up here. The differences that are intended are listed in
INTENDED, each with both sides' answers pinned, so a change on either side shows up too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from redis.asyncio import Redis

from server import errors
from server.main import create_app
from server.settings import Settings
from taskstore import Keys, TaskRequest, codec
from tests.helpers import keys_written

LIMIT = 65536
JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class Case:
    body: bytes
    headers: dict[str, str]


def _json(value: Any) -> Case:
    return Case(orjson.dumps(value), JSON)


def _nested(depth: int) -> Case:
    return Case(b'{"prompt": "deep", "params": {"a": ' + b"[" * depth + b"]" * depth + b"}}", JSON)


VALID = {
    "prompt only": _json({"prompt": "hello"}),
    "prompt and params": _json({"prompt": "hi", "params": {"a": [1, 2.5, None, True], "b": {"c": "d"}}}),
    "unicode": _json({"prompt": "héllo ☃ 𝄞", "params": {"ü": "ß"}}),
    "unknown fields ignored": _json({"prompt": "x", "other": 1}),
    "longest prompt": _json({"prompt": "x" * 4000}),
    "charset parameter": Case(b'{"prompt": "x"}', {"content-type": "application/json; charset=utf-8"}),
    "+json subtype": Case(b'{"prompt": "x"}', {"content-type": "application/vnd.api+json"}),
    "nested 200 deep": _nested(200),
}

INVALID = {
    "missing prompt": _json({"params": {}}),
    "empty prompt": _json({"prompt": ""}),
    "prompt too long": _json({"prompt": "x" * 4001}),
    "prompt not a string": _json({"prompt": 5}),
    "prompt null": _json({"prompt": None}),
    "params a list": _json({"prompt": "x", "params": []}),
    "params a string": _json({"prompt": "x", "params": "s"}),
    "top-level array": _json([{"prompt": "x"}]),
    "top-level string": _json("x"),
    "top-level null": Case(b"null", JSON),
    "top-level number": Case(b"5", JSON),
    "empty body": Case(b"", JSON),
    "not JSON": Case(b"{not json", JSON),
    "truncated JSON": Case(b'{"prompt": "x"', JSON),
    "trailing garbage": Case(b'{"prompt": "x"} x', JSON),
    "text/plain": Case(b'{"prompt": "x"}', {"content-type": "text/plain"}),
    "form content type": Case(b"prompt=x", {"content-type": "application/x-www-form-urlencoded"}),
    "no content type": Case(b'{"prompt": "x"}', {}),
    # pydantic refuses a lone surrogate in a str field itself, so both sides agree here.
    "lone surrogate in the prompt": Case(b'{"prompt": "\\ud800"}', JSON),
    "oversize": _json({"prompt": "x", "params": {"pad": "y" * LIMIT}}),
}

# name: (body, fast path status, stock status, why the fast path differs on purpose)
INTENDED: dict[str, tuple[Case, int, int, str]] = {
    "NaN": (
        Case(b'{"prompt": "x", "params": {"a": NaN}}', JSON),
        422,
        202,
        "NaN is not JSON: json.loads takes it, orjson (the store's codec) cannot write it",
    ),
    "Infinity": (
        Case(b'{"prompt": "x", "params": {"a": -Infinity}}', JSON),
        422,
        202,
        "the same for +-Infinity",
    ),
    "lone surrogate in params": (
        Case(b'{"prompt": "x", "params": {"k": "\\udfff"}}', JSON),
        422,
        202,
        "a lone surrogate has no UTF-8 form, so the task could not be stored",
    ),
    "nested deeper than orjson writes": (
        _nested(300),
        422,
        202,
        "orjson.dumps stops at 254 levels: accepted by FastAPI, not storable",
    ),
    "nested deeper than json parses": (
        _nested(20_000),
        422,
        400,
        "json.loads hits the recursion limit: FastAPI answers 400 (body parse error), the fast path 422",
    ),
    "a number beyond a double": (
        Case(b'{"prompt": "x", "params": {"a": 1e400}}', JSON),
        422,
        202,
        "json.loads reads it as inf, which orjson stores as null: not kept exactly, so refused",
    ),
    "an integer beyond 64 bits": (
        Case(b'{"prompt": "x", "params": {"a": 1180591620717411303424}}', JSON),
        422,
        202,
        "orjson keeps integers of 64 bits: 2**70 would be stored as a rounded float, so refused",
    ),
    "not UTF-8": (
        Case(b'{"prompt": "\xff"}', JSON),
        422,
        400,
        "FastAPI answers 400 'error parsing the body'; the fast path a 422 json_invalid",
    ),
}


def stock_app(seen: list[TaskRequest]) -> FastAPI:
    """POST /tasks the ordinary FastAPI way: the body declared as a TaskRequest parameter."""
    app = FastAPI(max_body_size=LIMIT)
    errors.install(app)

    @app.post("/tasks", status_code=202)
    async def submit(body: TaskRequest) -> dict[str, bool]:
        seen.append(body)
        return {"accepted": True}

    return app


@pytest.fixture
def seen() -> list[TaskRequest]:
    return []


@pytest.fixture
def stock(seen: list[TaskRequest]) -> Iterator[TestClient]:
    with TestClient(stock_app(seen), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def fast(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"max_body_bytes": LIMIT}))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _post(client: TestClient, case: Case) -> tuple[int, Any]:
    response = client.post("/tasks", content=case.body, headers=case.headers)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


@pytest.mark.parametrize("name", list(VALID))
async def test_a_valid_body_is_accepted_by_both_and_stored_as_the_stock_route_parsed_it(
    name: str, fast: TestClient, stock: TestClient, seen: list[TaskRequest], redis: Redis, settings: Settings
) -> None:
    case = VALID[name]

    fast_status, fast_body = _post(fast, case)
    stock_status, _ = _post(stock, case)

    stored = await redis.hget(Keys().task(fast_body["task_id"]), "request")
    assert (fast_status, stock_status) == (202, 202)
    assert stored == codec.encode_request(seen[0].prompt, seen[0].params)


@pytest.mark.parametrize("name", list(INVALID))
async def test_an_invalid_body_gets_the_same_status_and_body_and_writes_nothing(
    name: str, fast: TestClient, stock: TestClient, redis: Redis
) -> None:
    case = INVALID[name]

    fast_answer = _post(fast, case)
    stock_answer = _post(stock, case)

    assert fast_answer == stock_answer
    assert fast_answer[0] in (413, 422)
    assert await keys_written(redis) == []


@pytest.mark.parametrize("name", list(INTENDED))
async def test_intended_differences_stay_as_documented(
    name: str, fast: TestClient, stock: TestClient, redis: Redis
) -> None:
    case, fast_status, stock_status, _why = INTENDED[name]

    fast_answer = _post(fast, case)
    stock_answer = _post(stock, case)

    assert (fast_answer[0], stock_answer[0]) == (fast_status, stock_status)
    assert fast_answer[1]["detail"][0]["type"] in ("json_invalid", "value_error")
    assert await keys_written(redis) == []
