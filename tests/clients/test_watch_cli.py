"""`taskcast-watch` (the console script) as a user runs it: a subprocess against a live server,
started outside the checkout so that only the installed package can answer."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.clients.servers import ServedApp, StreamBlocker
from tests.conftest import LiveServer
from tests.factories import submit
from worker.runner import Runner

# Installed beside the interpreter by `pip install .[client]` (./dev installs the project editable).
WATCH = str(Path(sys.executable).with_name("taskcast-watch"))


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def states(self) -> list[str]:
        return [line for line in self.out.splitlines() if "  seq " in line]


async def _watch(*args: str, module: bool = False) -> Run:
    command = [sys.executable, "-m", "taskcast_client.watch"] if module else [WATCH]
    proc = await asyncio.create_subprocess_exec(
        *command,
        *args,
        cwd=Path(tempfile.gettempdir()),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    return Run(proc.returncode if proc.returncode is not None else -1, out.decode(), err.decode())


@pytest.mark.parametrize("transport", ["sse", "ws", "poll", "auto"])
async def test_cli_prints_each_state_and_exits_0_on_done(
    live_server: LiveServer, worker: Runner, transport: str
) -> None:
    run = await _watch(
        "hello cli", "--duration", "0.2", "--steps", "2", "--url", live_server.url, "--transport", transport
    )

    assert run.code == 0, run.err
    assert run.out.startswith("task ")
    assert "DONE" in run.states[-1]
    assert '"echo": "hello cli"' in run.states[-1]
    assert f"via {'sse' if transport == 'auto' else transport}" in run.err


async def test_cli_exits_1_on_failed_with_the_error(live_server: LiveServer, worker: Runner) -> None:
    run = await _watch("doomed", "--fail", "--url", live_server.url)

    assert run.code == 1, run.err
    assert "FAILED" in run.states[-1]
    assert "failed on purpose" in run.states[-1]


async def test_cli_exits_2_on_cancelled(client: httpx.AsyncClient, live_server: LiveServer) -> None:
    task_id = await submit(client, duration=30)
    await client.delete(f"/tasks/{task_id}")

    run = await _watch("--task-id", task_id, "--url", live_server.url)

    assert run.code == 2, run.err
    assert "CANCELLED" in run.states[-1]


async def test_cli_exits_3_on_an_unknown_task(live_server: LiveServer) -> None:
    run = await _watch("--task-id", "no-such-task", "--url", live_server.url)

    assert run.code == 3
    assert "unknown or expired" in run.err


async def test_cli_exits_3_on_bad_arguments() -> None:
    run = await _watch("a prompt", "--task-id", "both")

    assert run.code == 3
    assert "usage:" in run.err


async def test_cli_falls_back_to_ws_when_sse_is_refused(
    sse_blocked: tuple[ServedApp, StreamBlocker], worker: Runner
) -> None:
    server, _ = sse_blocked

    run = await _watch("hello proxy", "--duration", "0.2", "--url", server.url)

    assert run.code == 0, run.err
    assert "DONE" in run.states[-1]
    assert "sse refused: HTTP 403" in run.err
    assert "via ws" in run.err


async def test_cli_falls_back_to_polling_when_streams_are_blocked(
    streams_blocked: tuple[ServedApp, StreamBlocker], worker: Runner
) -> None:
    server, _ = streams_blocked

    run = await _watch("hello proxy", "--duration", "0.2", "--url", server.url)

    assert run.code == 0, run.err
    assert "DONE" in run.states[-1]
    assert "content-type text/html" in run.err
    assert "via poll" in run.err


async def test_cli_sends_the_api_key(start_server: Callable[..., LiveServer], worker: Runner) -> None:
    server = start_server(api_key="s3cret")

    run = await _watch("hello key", "--api-key", "s3cret", "--url", server.url)
    refused = await _watch("hello key", "--url", server.url)

    assert run.code == 0, run.err
    assert "DONE" in run.states[-1]
    assert refused.code == 3
    assert "401" in refused.err


async def test_cli_runs_as_a_module_too(live_server: LiveServer, worker: Runner) -> None:
    run = await _watch("hello module", "--url", live_server.url, module=True)

    assert run.code == 0, run.err
    assert "DONE" in run.states[-1]


async def test_cli_watches_a_task_with_a_watch_token(
    start_server: Callable[..., LiveServer], worker: Runner
) -> None:
    server = start_server(api_key="s3cret")
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": "Bearer s3cret"}) as owner:
        submitted = (await owner.post("/tasks", json={"prompt": "cli token"})).json()

    run = await _watch(
        "--task-id", submitted["task_id"], "--token", submitted["watch_token"], "--url", server.url
    )

    assert run.code == 0, run.err
    assert "DONE" in run.states[-1]
