"""A throwaway taskcast stack on loopback for benchmarks: private Redis, one API, one worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.embedded_redis import EmbeddedRedis, free_port  # noqa: E402


@dataclass
class Stack:
    host: str
    port: int
    redis_url: str
    api: subprocess.Popen[bytes]
    worker_env: dict[str, str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def api_rss(self) -> int:
        """Resident memory of the API process in bytes."""
        for line in Path(f"/proc/{self.api.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def start_worker(self) -> None:
        self.workers.append(subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT, env=self.worker_env))

    def stop(self) -> None:
        for proc in (self.api, *self.workers):
            proc.terminate()
        for proc in (self.api, *self.workers):
            proc.wait(timeout=20)


def _wait_healthy(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API at {url} did not come up within {timeout} s") from None
            time.sleep(0.1)


@contextmanager
def start_stack(
    *, concurrency: int = 64, worker_env: dict[str, str] | None = None, worker: bool = True
) -> Iterator[Stack]:
    """Redis, `uvicorn server.main:app` and (unless `worker=False`) `python -m worker`."""
    redis = EmbeddedRedis().start()
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis.url, "MAX_CONCURRENCY": str(concurrency), "MAX_STREAMS": "50000"}
    api_args = [
        sys.executable,
        "-m",
        "uvicorn",
        "server.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    api_args += ["--no-access-log", "--log-level", "warning", "--backlog", "4096"]
    stack = Stack(
        "127.0.0.1",
        port,
        redis.url,
        subprocess.Popen(api_args, cwd=ROOT, env=env),
        {**env, **(worker_env or {})},
    )
    try:
        if worker:
            stack.start_worker()
        _wait_healthy(stack.url)
        yield stack
    finally:
        stack.stop()
        redis.remove()
