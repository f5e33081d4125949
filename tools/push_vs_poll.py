"""Push against polling: the API CPU that one waiting client costs, and how soon it learns the end.

    python tools/push_vs_poll.py --clients 1000 --duration 5
    python tools/push_vs_poll.py --clients 1000 --duration 20 --server-root /tmp/before

One stack (a private Redis, one API process, one worker with a slot per client), and three
phases, each with N lean clients (raw HTTP/1.1, one keep-alive connection each, all at once):

    submit  each client POSTs a task of `duration` seconds and does nothing else (the baseline)
    push    each client POSTs, then follows GET /tasks/{id}/events to the terminal event
    poll    each client POSTs, then GETs /tasks/{id} every `--interval` s until the task ended
            (the first GET after a random part of the interval, as clients that come and go)

A phase's cost is the API process's CPU time over it, less what the idle API used for as long
(measured first). A client's cost of waiting is (phase - submit) / N, so the POST is not
counted. Latency: from the DONE transition (`updated_at`, stamped by Redis) to the moment the
client holds the terminal state.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taskstore import Keys, TaskStore
from tools.bench_common import ROOT, cpu_seconds, latency_line, machine
from tools.push_bench import KeepAlive, Stack, more_files, start_stack

TERMINAL = (b'"status":"DONE"', b'"status":"FAILED"', b'"status":"CANCELLED"')


@dataclass
class Phase:
    name: str
    cpu: float  # API CPU seconds, the idle share taken off
    wall: float
    latencies: list[float]


class Client(KeepAlive):
    async def get_state(self, task_id: str) -> dict[str, object]:
        self.writer.write(f"GET /tasks/{task_id} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        status, headers = await self.head()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if status != 200:
            raise RuntimeError(f"GET /tasks/{task_id} answered {status}: {body[:200]!r}")
        state: dict[str, object] = orjson.loads(body)
        return state

    async def follow(self, task_id: str) -> float:
        """Read the task's SSE stream to its end; when the terminal event arrived, less its stamp."""
        self.writer.write(f"GET /tasks/{task_id}/events HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        status, _ = await self.head()
        if status != 200:
            raise RuntimeError(f"SSE for {task_id} answered {status}")
        lag = -1.0
        while (line := await self.reader.readline()) != b"0\r\n":
            if line.startswith(b"data: ") and any(t in line for t in TERMINAL):
                lag = time.time() - float(orjson.loads(line[6:])["updated_at"])
        await self.reader.readline()
        return lag


async def submit_only(client: Client, task_id: str, store: TaskStore, interval: float) -> float:
    return 0.0  # the phase waits for the ends itself, through Redis (`all_ended`), not the API


async def push(client: Client, task_id: str, store: TaskStore, interval: float) -> float:
    return await client.follow(task_id)


async def poll(client: Client, task_id: str, store: TaskStore, interval: float) -> float:
    # Clients that started together would poll in step with tasks that end together: a random
    # first delay puts each poll anywhere in the interval, as for clients that come and go.
    await asyncio.sleep(random.uniform(0, interval))
    while True:
        state = await client.get_state(task_id)
        if state["status"] in ("DONE", "FAILED", "CANCELLED"):
            return time.time() - float(str(state["updated_at"]))
        await asyncio.sleep(interval)


Wait = Callable[[Client, str, TaskStore, float], Awaitable[float]]


async def one_client(
    stack: Stack, wait: Wait, store: TaskStore, args: argparse.Namespace, ids: list[str]
) -> float:
    client = Client(*await asyncio.open_connection(stack.host, stack.port))
    try:
        task_id = await client.post_task(f"wait {os.urandom(8).hex()}", {"duration": args.duration})
        ids.append(task_id)
        return await wait(client, task_id, store, args.interval)
    finally:
        client.writer.close()


async def run_phase(
    name: str, wait: Wait, stack: Stack, store: TaskStore, args: argparse.Namespace, idle_rate: float
) -> Phase:
    cpu_before, started = cpu_seconds(stack.api_pid), time.perf_counter()
    ids: list[str] = []
    lags = await asyncio.gather(*(one_client(stack, wait, store, args, ids) for _ in range(args.clients)))
    await all_ended(store, ids)
    wall = time.perf_counter() - started
    cpu = cpu_seconds(stack.api_pid) - cpu_before - idle_rate * wall
    await asyncio.sleep(1.0)  # the last streams close and the worker acks before the next phase
    return Phase(name, cpu, wall, [lag for lag in lags if lag > 0])


async def all_ended(store: TaskStore, ids: list[str]) -> None:
    """Wait until every task is in a terminal state, asking Redis (one round trip a check)."""
    while True:
        states = await store.states(ids)
        if all(raw is not None and any(t in raw for t in TERMINAL) for raw in states):
            return
        await asyncio.sleep(0.1)


async def idle_cpu_rate(stack: Stack, seconds: float = 3.0) -> float:
    before = cpu_seconds(stack.api_pid)
    await asyncio.sleep(seconds)
    return (cpu_seconds(stack.api_pid) - before) / seconds


async def compare(stack: Stack, args: argparse.Namespace) -> None:
    redis = Redis.from_url(stack.redis_url)
    store = TaskStore(redis, Keys())
    idle = await idle_cpu_rate(stack)
    phases = [
        await run_phase(name, wait, stack, store, args, idle)
        for name, wait in (("submit", submit_only), ("push", push), ("poll", poll))
    ]
    await redis.aclose()
    report(phases, args, idle)


def report(phases: list[Phase], args: argparse.Namespace, idle: float) -> None:
    submit, pushed, polled = phases
    n = args.clients
    print(f"machine: {machine()}")
    print(f"{n} clients, tasks of {args.duration:g} s, polling every {args.interval:g} s")
    print(f"idle API: {idle:.1%} of a core (taken off each phase)")
    for phase in phases:
        print(f"  {phase.name:6} phase: API CPU {phase.cpu:6.2f} s over {phase.wall:5.1f} s")
    push_cost = (pushed.cpu - submit.cpu) / n
    poll_cost = (polled.cpu - submit.cpu) / n
    print(f"API CPU per waiting task: push {push_cost * 1e3:.2f} ms, poll {poll_cost * 1e3:.2f} ms")
    print(f"push / poll: {push_cost / poll_cost:.2f}")
    print(latency_line("end -> client knows, push", pushed.latencies))
    print(latency_line("end -> client knows, poll", polled.latencies))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds each task runs")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    parser.add_argument("--server-root", type=Path, default=ROOT, help="run the API from this checkout")
    args = parser.parse_args()
    with more_files(), start_stack(concurrency=args.clients, worker=True, root=args.server_root) as stack:
        asyncio.run(compare(stack, args))


if __name__ == "__main__":
    main()
