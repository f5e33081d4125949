from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from httpx_ws import WebSocketDisconnect, aconnect_ws

from tests.conftest import LiveServer

KEY = "s3cret-key"


@pytest.fixture
def secured(start_server: Callable[..., LiveServer]) -> LiveServer:
    return start_server(api_key=KEY, cors_origins="https://app.example")


async def test_calls_without_the_key_answer_401(secured: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=secured.url) as client:
        answers = [
            await client.post("/tasks", json={"prompt": "x"}),
            await client.get("/tasks/any"),
            await client.get("/tasks/any/events"),
            await client.delete("/tasks/any"),
            await client.get("/metrics"),
            await client.post("/tasks", json={"prompt": "x"}, headers={"Authorization": "Bearer wrong"}),
        ]

    assert [a.status_code for a in answers] == [401] * 6
    assert answers[0].headers["www-authenticate"].startswith("Bearer")


async def test_health_docs_and_page_stay_open(secured: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=secured.url) as client:
        codes = [(await client.get(path)).status_code for path in ("/healthz", "/docs", "/openapi.json", "/")]

    assert codes == [200, 200, 200, 200]


async def test_bearer_header_or_query_parameter_lets_calls_through(secured: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=secured.url, headers={"Authorization": f"Bearer {KEY}"}) as client:
        submitted = await client.post("/tasks", json={"prompt": "with key"})
        task_id = submitted.json()["task_id"]
    async with httpx.AsyncClient(base_url=secured.url) as client:
        by_query = await client.get(f"/tasks/{task_id}", params={"api_key": KEY})

    assert submitted.status_code == 202
    assert by_query.status_code == 200


async def test_websocket_with_a_bad_key_closes_4401_before_subscribing(secured: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=secured.url) as client:
        async with aconnect_ws(f"{secured.url}/ws", client) as ws:
            with pytest.raises(WebSocketDisconnect) as exc:
                await ws.receive_text()

    assert exc.value.code == 4401


async def test_websocket_with_the_key_in_the_query_works(secured: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=secured.url, headers={"Authorization": f"Bearer {KEY}"}) as client:
        task_id = (await client.post("/tasks", json={"prompt": "ws key"})).json()["task_id"]
    async with httpx.AsyncClient(base_url=secured.url) as client:
        async with aconnect_ws(f"{secured.url}/tasks/{task_id}/ws?api_key={KEY}", client) as ws:
            frame = await ws.receive_json()

    assert frame["task_id"] == task_id


async def test_websocket_from_a_foreign_origin_closes_4403(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        async with aconnect_ws(
            f"{live_server.url}/ws", client, headers={"Origin": "https://evil.example"}
        ) as ws:
            with pytest.raises(WebSocketDisconnect) as exc:
                await ws.receive_text()

    assert exc.value.code == 4403


async def test_websocket_from_the_same_or_an_allowed_origin_is_accepted(secured: LiveServer) -> None:
    origins = [f"http://127.0.0.1:{secured.port}", "https://app.example"]
    async with httpx.AsyncClient(base_url=secured.url, headers={"Authorization": f"Bearer {KEY}"}) as client:
        for origin in origins:
            async with aconnect_ws(f"{secured.url}/ws", client, headers={"Origin": origin}) as ws:
                await ws.send_json({"op": "unsubscribe", "task_id": "t"})
                assert (await ws.receive_json())["op"] == "unsubscribed"


async def test_cors_preflight_from_an_allowed_origin_is_answered(secured: LiveServer) -> None:
    headers = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    async with httpx.AsyncClient(base_url=secured.url) as client:
        allowed = await client.options("/tasks", headers=headers)
        refused = await client.options("/tasks", headers={**headers, "Origin": "https://evil.example"})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in refused.headers


async def test_event_streams_carry_cors_headers_for_an_allowed_origin(secured: LiveServer) -> None:
    # The streaming routes are served ahead of the middleware stack (server/push/dispatch.py),
    # with the app's own CORS and access control: the same headers as every other answer.
    origin = {"Origin": "https://app.example"}
    async with httpx.AsyncClient(base_url=secured.url, headers={"Authorization": f"Bearer {KEY}"}) as client:
        task_id = (await client.post("/tasks", json={"prompt": "cors"})).json()["task_id"]
        unknown = await client.get("/tasks/nope/events", headers=origin)
        async with client.stream("GET", f"/tasks/{task_id}/events", headers=origin) as stream:
            status, headers = stream.status_code, stream.headers

    assert status == 200
    assert headers["access-control-allow-origin"] == "https://app.example"
    assert headers["content-type"].startswith("text/event-stream")
    assert unknown.status_code == 404
    assert unknown.headers["access-control-allow-origin"] == "https://app.example"


async def test_no_cors_headers_by_default(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        answer = await client.get("/healthz", headers={"Origin": "https://app.example"})

    assert "access-control-allow-origin" not in answer.headers


async def test_openapi_declares_the_key_and_token_schemes_so_docs_offer_authorize(
    secured: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=secured.url) as client:
        schema = (await client.get("/openapi.json")).json()

    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert (schemes["api_key"]["in"], schemes["api_key"]["name"]) == ("query", "api_key")
    assert (schemes["watch_token"]["in"], schemes["watch_token"]["name"]) == ("query", "token")
    assert schema["paths"]["/tasks"]["post"]["security"] == [{"bearer": []}, {"api_key": []}]
    assert {"watch_token": []} in schema["paths"]["/tasks/{task_id}/events"]["get"]["security"]
    assert "security" not in schema["paths"]["/healthz"]["get"]
