from __future__ import annotations

import json
from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from server.main import create_app
from server.settings import Settings
from taskstore import Keys, TaskQueue
from taskstore.demo import MAX_DURATION, MAX_STEPS
from tests.fuzz.strategies import FUZZ
from tests.helpers import both_topologies, keys_written

pytestmark = both_topologies


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"max_body_bytes": 8192}))) as c:
        yield c


def test_submit_answers_202_with_location(api: TestClient) -> None:
    response = api.post("/tasks", json={"prompt": "hello", "params": {"duration": 1}})

    body = response.json()
    assert response.status_code == 202
    assert response.headers["location"] == f"/tasks/{body['task_id']}"
    assert body == {"task_id": body["task_id"], "status": "PENDING", "cached": False}


async def test_submit_writes_the_hash_and_one_stream_entry(api: TestClient, redis: Redis, keys: Keys) -> None:
    task_id = api.post("/tasks", json={"prompt": "hello"}).json()["task_id"]

    assert await TaskQueue(redis, keys).backlog() == 1
    assert await redis.xlen(keys.shard_of_task(task_id).stream) == 1
    assert await redis.hget(keys.task(task_id), "status") == b"PENDING"


def test_get_returns_the_state_with_an_etag(api: TestClient) -> None:
    task_id = api.post("/tasks", json={"prompt": "hello"}).json()["task_id"]

    response = api.get(f"/tasks/{task_id}")

    body = response.json()
    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    assert {"task_id", "status", "result", "error", "progress", "seq", "attempts"} <= body.keys()
    assert {"created_at", "updated_at"} <= body.keys()


def test_get_with_matching_if_none_match_answers_304(api: TestClient) -> None:
    task_id = api.post("/tasks", json={"prompt": "hello"}).json()["task_id"]

    response = api.get(f"/tasks/{task_id}", headers={"If-None-Match": '"1"'})

    assert response.status_code == 304
    assert api.get(f"/tasks/{task_id}", headers={"If-None-Match": '"7"'}).status_code == 200


def test_get_unknown_task_returns_404(api: TestClient) -> None:
    response = api.get("/tasks/does-not-exist")

    assert response.status_code == 404
    assert "does-not-exist" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": 5}, "prompt"),
        ({"params": {}}, "prompt"),
        ({"prompt": "x", "params": [1]}, "params"),
        ({"prompt": "x" * 5000}, "prompt"),
    ],
)
async def test_bad_input_answers_422_naming_the_field_and_writes_nothing(
    api: TestClient, redis: Redis, body: dict[str, object], field: str
) -> None:
    response = api.post("/tasks", json=body)

    assert response.status_code == 422
    assert any(err["loc"][-1] == field for err in response.json()["detail"])
    assert await keys_written(redis) == []


async def test_malformed_json_answers_422_and_writes_nothing(api: TestClient, redis: Redis) -> None:
    response = api.post("/tasks", content=b'{"prompt": ', headers={"content-type": "application/json"})

    assert response.status_code == 422
    assert await keys_written(redis) == []


async def test_oversize_body_answers_413_and_writes_nothing(api: TestClient, redis: Redis) -> None:
    body = b'{"prompt": "' + b"x" * 9000 + b'"}'

    response = api.post("/tasks", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 413
    assert await keys_written(redis) == []


async def test_oversize_chunked_body_answers_413(api: TestClient, redis: Redis) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "'
        for _ in range(12):
            yield b"x" * 1024
        yield b'"}'

    response = api.post("/tasks", content=chunks(), headers={"content-type": "application/json"})

    assert response.status_code == 413
    assert await keys_written(redis) == []


def test_cancel_pending_task_answers_202_then_409(api: TestClient) -> None:
    task_id = api.post("/tasks", json={"prompt": "hello"}).json()["task_id"]

    first = api.delete(f"/tasks/{task_id}")
    second = api.delete(f"/tasks/{task_id}")

    assert first.status_code == 202 and first.json()["status"] == "CANCELLED"
    assert second.status_code == 409
    assert api.get(f"/tasks/{task_id}").json()["status"] == "CANCELLED"


async def test_full_queue_answers_503_with_retry_after(settings: Settings, redis: Redis, keys: Keys) -> None:
    with TestClient(create_app(settings.model_copy(update={"max_queue_length": 2}))) as api:
        codes = [api.post("/tasks", json={"prompt": f"p{i}"}).status_code for i in range(3)]
        refused = api.post("/tasks", json={"prompt": "p9"})

    assert codes == [202, 202, 503]
    assert refused.headers["retry-after"] == "1"
    assert await TaskQueue(redis, keys).backlog() == 2


async def test_each_kind_has_its_own_queue_limit(settings: Settings, redis: Redis, keys: Keys) -> None:
    limited = settings.model_copy(update={"max_queue_length": 2, "task_kinds": "default,render"})
    with TestClient(create_app(limited)) as api:
        renders = [api.post("/tasks", json={"prompt": f"r{i}", "kind": "render"}) for i in range(3)]
        summary = api.post("/tasks", json={"prompt": "s0"})

    assert [r.status_code for r in renders] == [202, 202, 503]
    assert summary.status_code == 202
    assert await TaskQueue(redis, keys.of_kind("render")).backlog() == 2


def test_healthz_answers_while_the_process_is_up(api: TestClient) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"prompt": "\xff\xfe"}', 0),  # not UTF-8
        (b'{"prompt": "\\ud800"}', "prompt"),  # a lone surrogate: no UTF-8 form
        (b'{"prompt": "x", "params": {"a": "\\udc00"}}', "params"),
        (b'{"prompt": "x", "params": {"\\ud800": 1}}', "params"),
        (b'{"prompt": "x", "params": {"a": ' + _nested(300) + b"}}", "params"),  # deeper than orjson writes
        (b'{"prompt": "x", "params": {"a": ' + _nested(3000) + b"}}", 0),  # deeper than the parsers read
        (_nested(900), "body"),
    ],
)
async def test_json_that_cannot_be_stored_answers_422_and_writes_nothing(
    api: TestClient, redis: Redis, body: bytes, field: str | int
) -> None:
    response = api.post("/tasks", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 422
    assert any(err["loc"][-1] == field for err in response.json()["detail"])
    assert await keys_written(redis) == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream"])
async def test_non_json_body_that_is_not_utf8_answers_422_and_writes_nothing(
    api: TestClient, redis: Redis, content_type: str
) -> None:
    response = api.post("/tasks", content=b"\xf0\xff prompt", headers={"content-type": content_type})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]
    assert await keys_written(redis) == []


def test_cancel_answers_404_and_409_as_its_schema_documents(api: TestClient) -> None:
    task_id = api.post("/tasks", json={"prompt": "hello"}).json()["task_id"]
    api.delete(f"/tasks/{task_id}")

    again, unknown = api.delete(f"/tasks/{task_id}"), api.delete("/tasks/nope")

    documented = api.get("/openapi.json").json()["paths"]["/tasks/{task_id}"]["delete"]["responses"]
    assert (again.status_code, again.json()["status"], unknown.status_code) == (409, "CANCELLED", 404)
    assert {"202", "404", "409"} <= documented.keys()


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_non_json_number_constants_answer_422_and_write_nothing(
    api: TestClient, redis: Redis, constant: str
) -> None:
    body = b'{"prompt": "x", "params": {"n": %s}}' % constant.encode()

    response = api.post("/tasks", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 422
    assert await keys_written(redis) == []


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        (b'{"duration": 1e400}', ["duration"]),
        (b'{"n": -1e400}', ["n"]),
        (b'{"n": 1180591620717411303424}', ["n"]),  # 2**70
        (b'{"n": 18446744073709551616}', ["n"]),  # 2**64
        (b'{"n": -9223372036854775809}', ["n"]),  # -2**63 - 1
        (b'{"n": 1e-400}', ["n"]),  # would be stored as 0
        (b'{"a": {"b": [1, 1' + b"0" * 5000 + b"]}}", ["a", "b", 1]),  # past int()'s 4300 digits
    ],
)
@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
async def test_a_number_the_store_cannot_keep_exactly_answers_422_naming_it_and_writes_nothing(
    api: TestClient, redis: Redis, params: bytes, loc: list[object], content_type: str
) -> None:
    body = b'{"prompt": "x", "params": ' + params + b"}"

    response = api.post("/tasks", content=body, headers={"content-type": content_type})

    error = response.json()["detail"][0]
    assert response.status_code == 422
    assert error["loc"] == ["body", "params", *loc]
    assert "cannot be stored exactly" in error["msg"] and len(error["msg"]) < 200
    assert await keys_written(redis) == []


async def test_numbers_at_the_edges_of_64_bits_and_doubles_are_stored_exactly(
    api: TestClient, redis: Redis
) -> None:
    body = b'{"prompt": "x", "params": {"a": 18446744073709551615, "b": -9223372036854775808, "c": 1e308}}'

    response = api.post("/tasks", content=body, headers={"content-type": "application/json"})

    stored = await redis.hget(Keys().task(response.json()["task_id"]), "request")
    assert response.status_code == 202
    assert orjson.loads(stored)["params"] == {"a": 2**64 - 1, "b": -(2**63), "c": 1e308}


async def test_a_422_echoes_a_bounded_part_of_a_long_value(api: TestClient, redis: Redis) -> None:
    response = api.post("/tasks", json={"prompt": "x" * 8000})

    echoed = response.json()["detail"][0]["input"]
    assert response.status_code == 422
    assert len(response.content) < 1000 and echoed.endswith("(8000 characters)")
    assert await keys_written(redis) == []


def test_get_of_a_long_unknown_id_answers_404_without_echoing_it_in_full(api: TestClient) -> None:
    response = api.get(f"/tasks/{'x' * 60_000}")  # httpx's longest URL is 65,536

    assert response.status_code == 404 and len(response.content) < 300


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"duration": MAX_DURATION + 1}, "duration"),
        ({"steps": MAX_STEPS + 1}, "steps"),
        ({"steps": 10_000_000, "duration": 1}, "steps"),
        ({"duration": "soon"}, "duration"),
        ({"duration": -1}, "duration"),
    ],
)
async def test_demo_params_beyond_the_demo_limits_answer_422_and_write_nothing(
    api: TestClient, redis: Redis, params: dict[str, object], field: str
) -> None:
    response = api.post("/tasks", json={"prompt": "x", "params": params})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "params", field]
    assert await keys_written(redis) == []


def test_demo_params_at_the_limits_are_accepted(api: TestClient) -> None:
    response = api.post(
        "/tasks", json={"prompt": "x", "params": {"duration": MAX_DURATION, "steps": MAX_STEPS}}
    )

    assert response.status_code == 202


def test_without_the_demo_check_any_duration_is_accepted(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"validate_demo_params": False}))) as api:
        response = api.post("/tasks", json={"prompt": "x", "params": {"duration": 10**6}})

    assert response.status_code == 202


@settings(FUZZ, max_examples=150)
@given(number=st.integers() | st.floats(allow_nan=False, allow_infinity=False))
async def test_any_number_in_params_is_stored_exactly_or_refused(
    api: TestClient, redis: Redis, number: float
) -> None:
    body = json.dumps({"prompt": "x", "params": {"n": number}})

    response = api.post("/tasks", content=body, headers={"content-type": "application/json"})

    if response.status_code == 202:
        stored = orjson.loads(await redis.hget(Keys().task(response.json()["task_id"]), "request"))
        assert stored["params"]["n"] == number and type(stored["params"]["n"]) is type(number)
    else:
        assert response.status_code == 422 and type(number) is int
        assert response.json()["detail"][0]["loc"] == ["body", "params", "n"]
