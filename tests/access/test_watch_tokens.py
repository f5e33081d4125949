from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt
import orjson
import pytest
from httpx_ws import WebSocketDisconnect, aconnect_ws
from redis.asyncio import Redis

from taskstore import Keys
from tests.conftest import LiveServer
from tests.push.sse import sse_events

KEY = "the-master-key"
SECRET = "watch-token-secret-of-32-bytes-at-least"
OLD_SECRET = "the-previous-watch-token-secret-still-valid"
OTHER_SECRET = "a-secret-this-deployment-never-had-at-all"


@pytest.fixture
def secured(start_server: Callable[..., LiveServer]) -> LiveServer:
    return start_server(api_key=KEY, token_secret=SECRET, token_secret_previous=OLD_SECRET)


def mint(task_id: str, secret: str = SECRET, ttl: int = 60) -> str:
    """What a user's backend does: one plain PyJWT call."""
    return jwt.encode({"sub": task_id, "exp": int(time.time()) + ttl}, secret, algorithm="HS256")


def tampered(token: str, task_id: str) -> str:
    """The token's signature on a payload rewritten for `task_id`."""
    header, _, signature = token.split(".")
    claims = jwt.utils.base64url_encode(orjson.dumps({"sub": task_id, "exp": int(time.time()) + 60}))
    return f"{header}.{claims.decode()}.{signature}"


async def _submit(server: LiveServer) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}) as client:
        # A prompt of its own: identical requests in flight would be coalesced into one task.
        prompt = f"watched {uuid.uuid4()}"
        answer = await client.post("/tasks", json={"prompt": prompt, "params": {"duration": 30}})
    assert answer.status_code == 202
    body: dict[str, Any] = answer.json()
    return body


async def _numsub(redis: Redis, task_id: str) -> int:
    [(_, count)] = await redis.pubsub_numsub(Keys().channel(task_id))
    return int(count)


# Each transport watches with a token and answers the first state it gets, or the refusal:
# an HTTP status, a WebSocket close code, or a /ws error frame (the socket then still answers).
Watch = Callable[[LiveServer, str, str], Awaitable[Any]]


async def _get_query(server: LiveServer, task_id: str, token: str) -> Any:
    async with httpx.AsyncClient(base_url=server.url) as client:
        answer = await client.get(f"/tasks/{task_id}", params={"token": token})
    return answer.json() if answer.status_code == 200 else answer.status_code


async def _get_bearer(server: LiveServer, task_id: str, token: str) -> Any:
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as client:
        answer = await client.get(f"/tasks/{task_id}")
    return answer.json() if answer.status_code == 200 else answer.status_code


async def _sse(server: LiveServer, task_id: str, token: str, **headers: str) -> Any:
    url = f"/tasks/{task_id}/events" + ("" if headers else f"?token={token}")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        async with client.stream("GET", url, headers=headers) as response:
            if response.status_code != 200:
                return response.status_code
            async for event in sse_events(response):
                return event["data"]
    raise AssertionError("the stream ended without an event")


async def _sse_bearer(server: LiveServer, task_id: str, token: str) -> Any:
    return await _sse(server, task_id, token, Authorization=f"Bearer {token}")


async def _task_socket(server: LiveServer, task_id: str, token: str, **headers: str) -> Any:
    url = f"{server.ws_url}/tasks/{task_id}/ws" + ("" if headers else f"?token={token}")
    async with httpx.AsyncClient() as client, aconnect_ws(url, client, headers=headers) as ws:
        try:
            return orjson.loads(await ws.receive_text())
        except WebSocketDisconnect as e:
            return e.code


async def _task_socket_bearer(server: LiveServer, task_id: str, token: str) -> Any:
    return await _task_socket(server, task_id, token, Authorization=f"Bearer {token}")


async def _mux(server: LiveServer, task_id: str, token: str, *, in_frame: bool = False) -> Any:
    """/ws opened with `token` (or, `in_frame`, with another valid one and `token` in the frame)."""
    opener = mint("some-other-task") if in_frame else token
    frame: dict[str, Any] = {"op": "subscribe", "task_id": task_id}
    if in_frame:
        frame["token"] = token
    async with httpx.AsyncClient() as client, aconnect_ws(f"{server.ws_url}/ws?token={opener}", client) as ws:
        try:
            await ws.send_json(frame)
            reply = orjson.loads(await ws.receive_text())
        except WebSocketDisconnect as e:
            return e.code
        if reply["op"] != "subscribed":
            await ws.send_json({"op": "unsubscribe", "task_id": "still-up"})
            assert orjson.loads(await ws.receive_text())["op"] == "unsubscribed"  # the socket stays up
            return reply
        return orjson.loads(await ws.receive_text())


async def _mux_frame(server: LiveServer, task_id: str, token: str) -> Any:
    return await _mux(server, task_id, token, in_frame=True)


TRANSPORTS: dict[str, Watch] = {
    "GET ?token=": _get_query,
    "GET Bearer": _get_bearer,
    "SSE ?token=": _sse,
    "SSE Bearer": _sse_bearer,
    "task socket ?token=": _task_socket,
    "task socket Bearer": _task_socket_bearer,
    "/ws ?token=": _mux,
    "/ws frame token": _mux_frame,
}


def _refused(outcome: Any) -> bool:
    if isinstance(outcome, dict):
        return outcome.get("op") == "error" and outcome.get("code") == 401
    return outcome in (401, 4401)


async def test_post_answers_a_watch_token_for_its_task_made_as_plain_pyjwt_reads_it(
    secured: LiveServer,
) -> None:
    submitted = await _submit(secured)

    claims = jwt.decode(submitted["watch_token"], SECRET, algorithms=["HS256"])

    assert claims["sub"] == submitted["task_id"]
    assert 3500 < claims["exp"] - time.time() <= 3600


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_token_from_post_watches_its_task(secured: LiveServer, transport: str) -> None:
    submitted = await _submit(secured)

    state = await TRANSPORTS[transport](secured, submitted["task_id"], submitted["watch_token"])

    assert state["task_id"] == submitted["task_id"] and state["status"] == "PENDING"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_token_minted_by_plain_pyjwt_or_with_the_previous_secret_watches(
    secured: LiveServer, transport: str
) -> None:
    task_id = (await _submit(secured))["task_id"]

    current = await TRANSPORTS[transport](secured, task_id, mint(task_id))
    previous = await TRANSPORTS[transport](secured, task_id, mint(task_id, OLD_SECRET))

    assert current["task_id"] == previous["task_id"] == task_id


BAD_TOKENS: dict[str, Callable[[str, str], str]] = {
    "for another task": lambda task_id, other: mint(other),
    "expired": lambda task_id, other: mint(task_id, ttl=-10),
    "tampered": lambda task_id, other: tampered(mint(other), task_id),
    "signed with another secret": lambda task_id, other: mint(task_id, OTHER_SECRET),
    "not a JWT": lambda task_id, other: "not.a.jwt",
}


@pytest.mark.parametrize("bad", BAD_TOKENS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_bad_token_is_refused_before_any_subscription(
    secured: LiveServer, redis: Redis, transport: str, bad: str
) -> None:
    task_id = (await _submit(secured))["task_id"]
    other = (await _submit(secured))["task_id"]
    token = BAD_TOKENS[bad](task_id, other)

    outcome = await TRANSPORTS[transport](secured, task_id, token)

    assert _refused(outcome), outcome
    assert await _numsub(redis, task_id) == 0


async def test_a_refused_ws_frame_leaves_no_subscription_while_the_socket_is_open(
    secured: LiveServer, redis: Redis
) -> None:
    task_id = (await _submit(secured))["task_id"]
    url = f"{secured.ws_url}/ws?token={mint('some-other-task')}"

    async with httpx.AsyncClient() as client, aconnect_ws(url, client) as ws:
        await ws.send_json({"op": "subscribe", "task_id": task_id, "token": mint(task_id, OTHER_SECRET)})
        reply = orjson.loads(await ws.receive_text())
        numsub = await _numsub(redis, task_id)

    assert reply["op"] == "error" and reply["code"] == 401 and reply["task_id"] == task_id
    assert numsub == 0


async def test_a_watch_token_never_submits_or_cancels(secured: LiveServer) -> None:
    submitted = await _submit(secured)
    auth = {"Authorization": f"Bearer {submitted['watch_token']}"}
    async with httpx.AsyncClient(base_url=secured.url, headers=auth) as client:
        cancel = await client.delete(f"/tasks/{submitted['task_id']}")
        cancel_by_query = await client.delete(
            f"/tasks/{submitted['task_id']}", params={"token": submitted["watch_token"]}, headers={}
        )
        submit = await client.post("/tasks", json={"prompt": "sneaky"})
        metrics = await client.get("/metrics")
        state = await client.get(f"/tasks/{submitted['task_id']}")

    assert [cancel.status_code, cancel_by_query.status_code, submit.status_code] == [401, 401, 401]
    assert metrics.status_code == 401
    assert state.json()["status"] == "PENDING"


async def test_ws_without_key_or_token_closes_4401(secured: LiveServer) -> None:
    async with httpx.AsyncClient() as client, aconnect_ws(f"{secured.ws_url}/ws", client) as ws:
        with pytest.raises(WebSocketDisconnect) as exc:
            await ws.receive_text()

    assert exc.value.code == 4401


@pytest.mark.parametrize("api_key", [None, ""])
async def test_without_an_api_key_there_is_no_token_and_everything_is_open(
    start_server: Callable[..., LiveServer], api_key: str | None
) -> None:
    live_server = start_server(api_key=api_key)
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        submitted = (await client.post("/tasks", json={"prompt": "open"})).json()
        state = await client.get(f"/tasks/{submitted['task_id']}")

    assert "watch_token" not in submitted
    assert state.status_code == 200


def test_a_token_secret_shorter_than_32_bytes_is_refused_without_echoing_it(
    start_server: Callable[..., LiveServer],
) -> None:
    with pytest.raises(ValueError, match="token_secret") as exc:
        start_server(api_key=KEY, token_secret="short-secret-value")

    assert "short-secret-value" not in str(exc.value)
