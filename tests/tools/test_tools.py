"""Smoke tests of the benchmark tools: each runs briefly on its own private stack and prints
its figures. The figures themselves are not asserted (tests assert behaviour, never timings)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT, free_port


def _tool(*args: str, timeout: float = 50) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_worker_bench_drains_and_verifies_every_task() -> None:
    done = _tool("tools/worker_bench.py", "--tasks", "300", "--concurrency", "50")

    assert done.returncode == 0, done.stderr
    assert "tasks/s" in done.stdout
    assert "verified: 300/300 DONE, 300 of them at seq 3" in done.stdout


def test_load_test_submits_and_follows_tasks_over_sse() -> None:
    done = _tool("tools/load_test.py", "--concurrency", "8", "--requests", "40", "--follow", "sse")

    assert done.returncode == 0, done.stderr
    assert "submitted 40 in" in done.stdout and "req/s (202: 40)" in done.stdout
    assert "completed 40 tasks" in done.stdout and "{'DONE': 40}" in done.stdout
    assert "wait until DONE" in done.stdout and "p99" in done.stdout


def test_push_bench_measures_end_to_end_latency() -> None:
    done = _tool("tools/push_bench.py", "latency", "--runs", "20")

    assert done.returncode == 0, done.stderr
    assert "submit -> terminal event over SSE" in done.stdout and "n=20" in done.stdout


def test_push_bench_fans_out_to_sse_and_websocket_subscribers() -> None:
    done = _tool("tools/push_bench.py", "fanout", "--subscribers", "40", "--tasks", "4", "--duration", "0.4")

    assert done.returncode == 0, done.stderr
    assert "subscribers=40" in done.stdout
    assert "API Redis connections:" in done.stdout and "KiB per open subscriber" in done.stdout
    assert "publish -> receipt: n=" in done.stdout


def test_push_vs_poll_prints_the_cost_of_waiting_each_way() -> None:
    done = _tool("tools/push_vs_poll.py", "--clients", "20", "--duration", "0.5", "--interval", "0.2")

    assert done.returncode == 0, done.stderr
    assert "API CPU per waiting task: push" in done.stdout and "push / poll:" in done.stdout
    assert "end -> client knows, push:" in done.stdout and "(n=20)" in done.stdout


def test_slow_readers_samples_sockets_and_send_queues() -> None:
    done = _tool("tools/slow_readers.py", "--clients", "5", "--seconds", "1", "--every", "0.5")

    assert done.returncode == 0, done.stderr
    assert "before the clients: API sockets" in done.stdout and "kernel: API Send-Q" in done.stdout


def test_load_test_can_poll_instead() -> None:
    done = _tool("tools/load_test.py", "--concurrency", "4", "--requests", "12", "--follow", "poll")

    assert done.returncode == 0, done.stderr
    assert "completed 12 tasks" in done.stdout


def test_tools_refuse_anything_but_loopback() -> None:
    done = _tool("tools/load_test.py", "--url", "http://192.0.2.1:8000", "--requests", "1")

    assert done.returncode != 0
    assert "only ever target 127.0.0.1" in done.stderr


def test_profile_worker_writes_a_prof_file(tmp_path: Path) -> None:
    out = tmp_path / "worker.prof"

    done = _tool("tools/profile.py", "worker", "--seconds", "1", "--prefill", "100", "--out", str(out))

    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 0
    assert f"snakeviz {out}" in done.stdout


def test_profile_api_serves_while_profiling(tmp_path: Path) -> None:
    out, port = tmp_path / "api.prof", free_port()
    args = ["tools/profile.py", "api", "--seconds", "4", "--port", str(port), "--out", str(out)]
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)

    answer = _post_when_up(f"http://127.0.0.1:{port}")
    stdout, _ = proc.communicate(timeout=30)

    assert answer.status_code == 202
    assert proc.returncode == 0
    assert out.stat().st_size > 0 and "snakeviz" in stdout


def _post_when_up(url: str, timeout: float = 15) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.post(f"{url}/tasks", json={"prompt": "profiled"}, timeout=5)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_dash_bench_compares_phases_without_and_with_a_dashboard() -> None:
    args = ["--rate", "50", "--phase", "1.5", "--repeats", "1", "--warmup", "0.5", "--connections", "2"]
    done = _tool("tools/dash_bench.py", *args)

    assert done.returncode == 0, done.stderr
    assert "API CPU:" in done.stdout and "with one dashboard" in done.stdout
    assert "dashboard's Redis commands/s idle: feed" in done.stdout
    assert "dashboard's Redis commands/s at" in done.stdout
    on = next(line for line in done.stdout.splitlines() if line.startswith("on "))
    assert int(on.split()[5]) > 0  # the dashboard client read frames
    assert float(on.split()[6]) > 0  # the feed's reads were counted


@pytest.mark.timeout(150)
def test_cluster_bench_compares_single_node_and_cluster() -> None:
    args = [
        "--seconds",
        "1",
        "--tasks",
        "200",
        "--latency-runs",
        "10",
        "--rounds",
        "1",
        "--idle-seconds",
        "1",
    ]
    done = _tool("tools/cluster_bench.py", *args, timeout=140)

    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line.split()[0] for line in lines[2:4]] == ["single", "cluster"]
    assert lines[-1].startswith("cluster / single: P1")


def test_submit_instructions_counts_a_submit_of_each_variant() -> None:
    # --cpu: the same runs without valgrind (under it, the tool takes minutes; it is run by hand).
    done = _tool("tools/submit_instructions.py", "--cpu", "--requests", "128", "--warmup", "64")

    assert done.returncode == 0, done.stderr
    assert done.stdout.count("us of CPU a request") == 4
    assert "coalesce off, Idempotency-Key" in done.stdout
