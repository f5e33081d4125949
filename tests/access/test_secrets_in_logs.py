from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from httpx_ws import aconnect_ws
from redis.asyncio import Redis

from server.embedded_redis import free_port
from tests.helpers import ROOT, RedisProcess, wait_for

PASSWORD = "redis-password-that-must-stay-secret"
KEY = "api-key-that-must-stay-secret"
SECRET = "token-secret-that-must-stay-secret-too"


@pytest.fixture
async def locked_redis(own_redis: RedisProcess) -> str:
    """The private Redis with a password; its URL carries it, as a deployment's would."""
    client = Redis.from_url(own_redis.url)
    await client.config_set("requirepass", PASSWORD)
    await client.aclose()
    return f"redis://:{PASSWORD}@127.0.0.1:{own_redis.port}/0"


@pytest.fixture(params=["text", "json"])
def launched(locked_redis: str, request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    """`python -m server.launcher` (API with uvicorn's access log on, and a worker), its log on disk."""
    port = free_port()
    log = ROOT / "test-artifacts" / f"launcher-secrets-{request.param}-{port}.log"
    log.parent.mkdir(exist_ok=True)
    env = {**os.environ, "REDIS_URL": locked_redis, "API_KEY": KEY, "TOKEN_SECRET": SECRET}
    env["LOG_FORMAT"] = request.param
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.launcher", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield f"http://127.0.0.1:{port}", log
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


async def _up(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/readyz")).status_code == 200
    except httpx.TransportError:
        return False


async def _done(client: httpx.AsyncClient, task_id: str) -> bool:
    state = (await client.get(f"/tasks/{task_id}", params={"api_key": KEY})).json()
    return bool(state["status"] == "DONE")


@pytest.mark.timeout(90)
async def test_no_log_line_of_api_worker_or_launcher_holds_a_secret(launched: tuple[str, Path]) -> None:
    url, log = launched
    ws_url = url.replace("http", "ws", 1)
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        await wait_for(lambda: _up(client), timeout=60, what="the launched API to be ready")
        submitted = (await client.post("/tasks", params={"api_key": KEY}, json={"prompt": "logged"})).json()
        task_id, token = submitted["task_id"], submitted["watch_token"]
        watched = await client.get(f"/tasks/{task_id}", params={"token": token})
        async with aconnect_ws(f"{ws_url}/tasks/{task_id}/ws?token={token}", client) as ws:
            await ws.receive_text()
        async with aconnect_ws(f"{ws_url}/ws?api_key={KEY}", client) as ws:
            await ws.send_json({"op": "subscribe", "task_id": task_id})
            await ws.receive_text()
        await wait_for(lambda: _done(client, task_id), timeout=30, what="the worker to run the task")
    await wait_for(lambda: _logged(log, "task " + task_id + " done"), what="the worker's line")

    text = log.read_text(errors="replace")
    assert watched.status_code == 200
    for secret in (PASSWORD, KEY, SECRET, token, token.rsplit(".", 1)[1]):
        assert secret not in text
    assert "using REDIS_URL=redis://:***@" in text  # the launcher
    assert "on redis://:***@" in text  # the worker
    assert f"GET /tasks/{task_id}?token=*** HTTP" in text  # uvicorn's access log
    assert "/ws?api_key=***" in text  # uvicorn's WebSocket line


async def _logged(log: Path, line: str) -> bool:
    return line in log.read_text(errors="replace")
