"""Real API processes (`python -m uvicorn server.main:app`), SSE readers and /metrics parsing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import ROOT, free_port, wait_for


class ApiProcess:
    """One API process on a free port; its stdout and stderr go to a log file."""

    def __init__(self, redis_url: str, log_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"api-{self.port}.log"
        full_env = {**os.environ, "REDIS_URL": redis_url, **{k.upper(): v for k, v in env.items()}}
        args = [sys.executable, "-m", "uvicorn", "server.main:app", "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--timeout-graceful-shutdown", "1"]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_ready(self) -> None:
        async def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"API process exited {self.proc.returncode}:\n{self.log()}")
            try:
                async with httpx.AsyncClient(base_url=self.url) as client:
                    return (await client.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(up, timeout=20, what=f"the API process on port {self.port}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


async def read_events(
    client: httpx.AsyncClient, task_id: str, on_event: Callable[[], None] = lambda: None
) -> list[dict[str, Any]]:
    """Every event of the task's SSE stream, read line by line until the server ends it."""
    events: list[dict[str, Any]] = []
    async with client.stream("GET", f"/tasks/{task_id}/events") as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                events.append(orjson.loads(line.removeprefix("data:")))
                on_event()
    return events


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in an exposition text; 0.0 when it is absent."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def scrape(url: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return response.text
