"""Push benchmark: end-to-end latency of a zero-duration task, and fan-out to N subscribers.

    python tools/push_bench.py latency --runs 2000
    python tools/push_bench.py fanout --subscribers 10000 --tasks 100

It starts its own stack on loopback (a private redis-server, one API process, one worker).
Clients speak raw HTTP/1.1 and WebSocket so the figures measure the service, not a heavy
client library.

latency: one task at a time: POST /tasks -> open its SSE stream -> the terminal event arrives.
fanout:  N subscribers (half SSE, half WebSocket) on M running tasks; prints the API's Redis
         connections, its memory per subscriber, its CPU time per delivered event (process CPU
         time from the worker's start to the last terminal event, over the events delivered),
         and publish-to-receipt latency (event `updated_at`, stamped by Redis at the transition,
         to the moment a client read it). The subscribers are lean raw-socket protocols
         (tools/lean_clients.py), so one client process keeps up with 10,000 streams.

--server-root DIR runs the API from another checkout (e.g. `git worktree add /tmp/before
<commit>`), so two builds are compared with the same client on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import uvloop
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.bench_common import (
    ROOT,
    api_child_at,
    cpu_seconds,
    percentile,
    redis_url,
    rss_bytes,
    worker_process,
)
from tools.lean_clients import TERMINAL, LeanSubscriber, OnEvent, open_subscriber


@dataclass
class Stack:
    host: str
    port: int
    redis_url: str
    api_pid: int
    start_worker: Callable[[], None]


@contextmanager
def start_stack(*, concurrency: int, worker: bool, root: Path = ROOT) -> Iterator[Stack]:
    """A private Redis and one API process (run from `root`); the worker now, or when
    `start_worker()` is called."""
    with ExitStack() as running:
        redis = running.enter_context(redis_url(None))
        url, api = running.enter_context(api_child_at(root, redis, {"max_streams": 50_000}))

        def start_worker() -> None:
            running.enter_context(worker_process(redis, max_concurrency=concurrency))

        if worker:
            start_worker()
        address = urlsplit(url)
        yield Stack(address.hostname or "127.0.0.1", address.port or 80, redis, api.pid, start_worker)


class Counter:
    """Subscribers that have their first event (the snapshot): their stream is open."""

    count = 0


def report(name: str, values: list[float]) -> None:
    ms = [v * 1000 for v in values]
    p50, p99 = percentile(ms, 50), percentile(ms, 99)
    print(f"{name}: n={len(ms)} avg={statistics.fmean(ms):.2f} ms p50={p50:.2f} ms p99={p99:.2f} ms")


async def http(
    host: str, port: int, request: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(request)
    status = int((await reader.readline()).split()[1])
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    return reader, writer, status


async def post_task(host: str, port: int, prompt: str, params: dict[str, float] | None = None) -> str:
    body = orjson.dumps({"prompt": prompt, "params": params or {}})
    head = f"POST /tasks HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    request = head.encode() + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
    reader, writer, status = await http(host, port, request)
    answer = await reader.read()
    writer.close()
    if status != 202:
        raise RuntimeError(f"POST /tasks answered {status}: {answer[:200]!r}")
    task_id: str = orjson.loads(answer[answer.index(b"{") : answer.rindex(b"}") + 1])["task_id"]
    return task_id


class KeepAlive:
    """One HTTP/1.1 connection reused for every request, as a browser or a client pool does."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def head(self) -> tuple[int, dict[str, str]]:
        status = int((await self.reader.readline()).split()[1])
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.lower()] = value.strip()
        return status, headers

    async def post_task(self, prompt: str, params: dict[str, float] | None = None) -> str:
        body = orjson.dumps({"prompt": prompt, "params": params or {}})
        head = b"POST /tasks HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        self.writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        status, headers = await self.head()
        answer = await self.reader.readexactly(int(headers["content-length"]))
        if status != 202:
            raise RuntimeError(f"POST /tasks answered {status}: {answer[:200]!r}")
        task_id: str = orjson.loads(answer)["task_id"]
        return task_id

    async def until_terminal(self, task_id: str) -> None:
        """Read the task's SSE stream to its end (a whole body or the last chunk)."""
        self.writer.write(f"GET /tasks/{task_id}/events HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        status, headers = await self.head()
        if status != 200:
            raise RuntimeError(f"SSE for {task_id} answered {status}")
        if "content-length" in headers:
            await self.reader.readexactly(int(headers["content-length"]))
            return
        while (await self.reader.readline()) != b"0\r\n":
            pass
        await self.reader.readline()


async def latency(stack: Stack, runs: int) -> None:
    conn = KeepAlive(*await asyncio.open_connection(stack.host, stack.port))
    timings = []
    for i in range(runs + 100):
        start = time.perf_counter()
        task_id = await conn.post_task(f"latency {i} {os.urandom(4).hex()}")
        await conn.until_terminal(task_id)
        if i >= 100:  # the first runs warm up connections and caches
            timings.append(time.perf_counter() - start)
    conn.writer.close()
    report("submit -> terminal event over SSE (zero-duration task, one at a time)", timings)


async def fanout(stack: Stack, subscribers: int, tasks: int, duration: float) -> None:
    """Open every subscriber on PENDING tasks first, then start the worker, so the figures
    measure fan-out to N open streams, not the time it takes to open them."""
    redis = Redis.from_url(stack.redis_url)
    params = {"duration": duration, "steps": 4}
    ids = [
        await post_task(stack.host, stack.port, f"fanout {i} {os.urandom(4).hex()}", params)
        for i in range(tasks)
    ]
    base_conns, base_rss = await _api_connections(redis), rss_bytes(stack.api_pid)
    seen: list[tuple[float, float, bool]] = []  # received, stamped, terminal
    opened = Counter()
    ending: list[tuple[float, int]] = []  # API CPU and deliveries when the first terminal event came

    def on_event(received_at: float, event: dict[str, Any], first: bool) -> None:
        if first:  # the snapshot read from the hash: its stream is open, it measures no delivery
            opened.count += 1
            return
        if not ending and event["status"] in TERMINAL:
            ending.append((cpu_seconds(stack.api_pid), len(seen)))
        seen.append((received_at, float(event["updated_at"]), event["status"] in TERMINAL))

    clients = await _open_all(stack, ids, subscribers, on_event)
    while opened.count < subscribers:
        _raise_failed(clients)
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # let the API settle before its memory is read
    conns, rss = await _api_connections(redis), rss_bytes(stack.api_pid)
    print(f"{subscribers} subscribers open; starting the worker", flush=True)
    cpu_before, started = cpu_seconds(stack.api_pid), time.perf_counter()
    stack.start_worker()
    await asyncio.gather(*(c.done for c in clients))
    await asyncio.gather(*(c.closed for c in clients))  # every stream's end is in the CPU time
    cpu = cpu_seconds(stack.api_pid) - cpu_before
    wall = time.perf_counter() - started
    await redis.aclose()
    print(f"subscribers={subscribers} (half SSE, half WebSocket) on {tasks} tasks of {duration:g} s, 4 steps")
    print(f"API Redis connections: {base_conns} before the subscribers, {conns} with all of them open")
    print(f"API memory: {(rss - base_rss) / subscribers / 1024:.1f} KiB per open subscriber")
    print(
        f"API CPU: {cpu:.2f} s over the {wall:.1f} s run, {len(seen)} deliveries: "
        f"{cpu / max(1, len(seen)) * 1e6:.1f} us per delivery, stream ends included"
    )
    if ending:
        (cpu_mid, n_mid), cpu_end = ending[0], cpu_before + cpu
        print(
            f"  the RUNNING and progress bursts: {(cpu_mid - cpu_before) / max(1, n_mid) * 1e6:.1f} us "
            f"per delivery ({n_mid} deliveries); the terminal burst with every stream's end: "
            f"{(cpu_end - cpu_mid) / subscribers * 1e6:.1f} us per subscriber"
        )
    report("publish -> receipt", [max(0.0, got - stamped) for got, stamped, _ in seen])
    for name, terminal in (("RUNNING and progress", False), ("terminal", True)):
        latencies = [max(0.0, got - stamped) for got, stamped, end in seen if end is terminal]
        report(f"  {name}", latencies)


async def _open_all(
    stack: Stack, ids: list[str], subscribers: int, on_event: OnEvent, batch: int = 250
) -> list[LeanSubscriber]:
    """Connect the subscribers a batch at a time (the listen backlog is finite), alternating
    SSE and WebSocket and spreading them over the tasks."""
    clients: list[LeanSubscriber] = []
    for first in range(0, subscribers, batch):
        clients += await asyncio.gather(
            *(
                open_subscriber(stack.host, stack.port, ids[n % len(ids)], n % 2 == 0, on_event)
                for n in range(first, min(subscribers, first + batch))
            )
        )
    return clients


def _raise_failed(clients: list[LeanSubscriber]) -> None:
    failed = next((c for c in clients if c.done.done() and c.done.exception()), None)
    if failed is not None:
        raise RuntimeError(f"a subscriber failed while opening: {failed.done.exception()!r}")


async def _api_connections(redis: Redis) -> int:
    return sum(1 for c in await redis.client_list() if c.get("name", "").startswith("taskcast-api"))


@contextmanager
def more_files() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["latency", "fanout"])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds each fan-out task runs")
    parser.add_argument(
        "--server-root", type=Path, default=ROOT, help="run the API from this checkout (a build to compare)"
    )
    args = parser.parse_args()
    worker = args.mode == "latency"
    concurrency = max(args.tasks, 5)
    with more_files(), start_stack(concurrency=concurrency, worker=worker, root=args.server_root) as stack:
        # uvloop, as the API runs: the client reads every subscriber's socket in one process, and
        # its own event loop's cost is not what the latency is meant to measure.
        if args.mode == "latency":
            uvloop.run(latency(stack, args.runs))
        else:
            uvloop.run(fanout(stack, args.subscribers, args.tasks, args.duration))


if __name__ == "__main__":
    main()
