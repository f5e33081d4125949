"""What the benchmark tools share: a private Redis, the API and worker as child processes,
loopback-only URLs and latency summaries.

Every tool targets 127.0.0.1 only: it starts its own redis-server on a free port (never the
machine's shared one on 6379) unless it is given a loopback URL to use instead.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from server.embedded_redis import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parents[1]

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
NOOP_HANDLER = "tools.noop_handler:noop"


def loopback(url: str) -> str:
    """`url` unchanged when it points at this machine; SystemExit otherwise."""
    host = urlsplit(url).hostname
    if host not in LOOPBACK:
        raise SystemExit(f"refusing {url!r}: the benchmark tools only ever target 127.0.0.1")
    return url


@contextmanager
def redis_url(given: str | None) -> Iterator[str]:
    """`given` (loopback only), or a private redis-server on a free port, removed on exit."""
    if given:
        yield loopback(given)
        return
    redis = EmbeddedRedis().start()
    try:
        yield redis.url
    finally:
        redis.remove()


def child_env(redis: str, **settings: str | int) -> dict[str, str]:
    """The environment of an API or worker child: REDIS_URL and SETTINGS in upper case."""
    env = {**os.environ, "REDIS_URL": redis, "PYTHONPATH": str(ROOT)}
    env.update({name.upper(): str(value) for name, value in settings.items()})
    return env


def api_command(port: int) -> list[str]:
    """uvicorn as the benchmarks run it: one process, no access log, httptools + uvloop."""
    args = [sys.executable, "-m", "uvicorn", "server.main:app", "--host", "127.0.0.1", "--port", str(port)]
    return [*args, "--no-access-log", "--log-level", "warning", "--http", "httptools", "--loop", "uvloop"]


@contextmanager
def api_process(redis: str, **settings: str | int) -> Iterator[str]:
    """`uvicorn server.main:app` on a free loopback port; yields its base URL."""
    with api_child(redis, **settings) as (url, _):
        yield url


@contextmanager
def api_child(redis: str, **settings: str | int) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Like `api_process`, and the process too (for its memory or CPU)."""
    with api_child_at(ROOT, redis, settings) as answer:
        yield answer


@contextmanager
def api_child_at(
    root: Path, redis: str, settings: Mapping[str, str | int]
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`api_child` running the `server` of the checkout at `root` (a build to compare against)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**child_env(redis, **settings), "PYTHONPATH": str(root)}
    with child(api_command(port), env, cwd=root) as proc:
        wait_healthy(url)
        yield url, proc


@contextmanager
def worker_process(redis: str, **settings: str | int) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m worker`; stopped with SIGTERM (its graceful shutdown) on exit."""
    with child([sys.executable, "-m", "worker"], child_env(redis, **settings)) as proc:
        yield proc


@contextmanager
def child(args: Sequence[str], env: dict[str, str], cwd: Path = ROOT) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(list(args), cwd=cwd, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_healthy(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API at {url} did not answer /healthz within {timeout:g} s")
        time.sleep(0.05)


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile of `values` (not empty)."""
    ordered = sorted(values)
    rank = max(1, round(len(ordered) * pct / 100 + 0.5))
    return ordered[min(len(ordered), rank) - 1]


def latency_line(name: str, seconds: Sequence[float]) -> str:
    """`name: avg … p50 … p99 … max … ms (n=…)`, or `name: no samples`."""
    if not seconds:
        return f"{name}: no samples"
    ms = [s * 1000 for s in seconds]
    figures = [("avg", statistics.fmean(ms)), ("p50", percentile(ms, 50)), ("p99", percentile(ms, 99))]
    text = "  ".join(f"{label} {value:7.2f} ms" for label, value in [*figures, ("max", max(ms))])
    return f"{name}: {text}  (n={len(ms)})"


def machine() -> str:
    """CPU model and count, for the record next to a figure."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux /proc), 0 when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc), 0.0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
