"""Load test: N concurrent submitters, each POSTs a task and follows it until it ends.

    python tools/load_test.py --concurrency 200 --requests 5000            # own stack
    python tools/load_test.py --url http://127.0.0.1:8000 --duration 30   # a running API
    python tools/load_test.py --follow none --concurrency 64 --duration 10  # submit rate only

Without --url it starts its own stack on loopback: a private redis-server, one API process
(uvicorn, no access log) and one worker. Prints the submit rate, the submit latency, and the
wait from the 202 until the task was seen DONE (over SSE, or by polling GET).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvloop

if not __package__:  # run as `python tools/load_test.py`: import from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from tools.bench_common import (
    api_process,
    latency_line,
    loopback,
    machine,
    redis_url,
    worker_process,
)

TERMINAL = frozenset({"DONE", "FAILED", "CANCELLED"})


@dataclass
class Tally:
    submit: list[float] = field(default_factory=list)
    wait: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    codes: Counter[int] = field(default_factory=Counter)
    ends: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class Plan:
    requests: int
    deadline: float
    follow: str
    poll_interval: float
    params: dict[str, Any]
    run: str = field(default_factory=lambda: os.urandom(4).hex())
    issued: int = 0

    def take(self) -> int | None:
        """The number of the next request, or None when the run is over."""
        if self.issued >= self.requests or time.perf_counter() >= self.deadline:
            return None
        self.issued += 1
        return self.issued


async def follow_sse(client: httpx.AsyncClient, task_id: str) -> str:
    """Read the task's SSE stream until a terminal state; that status."""
    async with client.stream("GET", f"/tasks/{task_id}/events") as response:
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                status = str(json.loads(line[5:])["status"])
                if status in TERMINAL:
                    return status
    raise RuntimeError(f"the event stream of {task_id} ended before the task did")


async def follow_poll(client: httpx.AsyncClient, task_id: str, interval: float) -> str:
    """GET the task every `interval` seconds until a terminal state; that status."""
    while True:
        status = str((await client.get(f"/tasks/{task_id}")).json()["status"])
        if status in TERMINAL:
            return status
        await asyncio.sleep(interval)


async def one(client: httpx.AsyncClient, plan: Plan, number: int, tally: Tally) -> None:
    body = {"prompt": f"load {plan.run} {number}", "params": plan.params}
    start = time.perf_counter()
    response = await client.post("/tasks", json=body)
    answered = time.perf_counter()
    tally.submit.append(answered - start)
    tally.codes[response.status_code] += 1
    if response.status_code != 202 or plan.follow == "none":
        return
    task_id = response.json()["task_id"]
    if plan.follow == "sse":
        status = await follow_sse(client, task_id)
    else:
        status = await follow_poll(client, task_id, plan.poll_interval)
    ended = time.perf_counter()
    tally.ends[status] += 1
    tally.wait.append(ended - answered)
    tally.total.append(ended - start)


async def submitter(url: str, plan: Plan, tally: Tally, timeout: float) -> None:
    # A client each: one AsyncClient shared by hundreds of tasks spends most of its time in
    # its connection pool (encode/httpx#3215); alone, each keeps one keep-alive connection.
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
        while (number := plan.take()) is not None:
            try:
                await one(client, plan, number, tally)
            except (httpx.HTTPError, RuntimeError, ValueError, KeyError) as e:
                tally.errors[type(e).__name__] += 1


async def load(url: str, args: argparse.Namespace) -> tuple[Tally, float]:
    deadline = time.perf_counter() + (args.duration or float("inf"))
    plan = Plan(args.requests, deadline, args.follow, args.poll_interval, json.loads(args.params))
    tally = Tally()
    start = time.perf_counter()
    await asyncio.gather(*(submitter(url, plan, tally, args.timeout) for _ in range(args.concurrency)))
    return tally, time.perf_counter() - start


def report(url: str, args: argparse.Namespace, tally: Tally, elapsed: float) -> None:
    sent = len(tally.submit)
    print(f"machine: {machine()}")
    print(f"target: {url}  submitters: {args.concurrency}  follow: {args.follow}")
    codes = ", ".join(f"{code}: {n}" for code, n in sorted(tally.codes.items()))
    print(f"submitted {sent} in {elapsed:.2f} s: {sent / elapsed:,.0f} req/s ({codes})")
    print(latency_line("submit latency", tally.submit))
    if args.follow != "none":
        ended = sum(tally.ends.values())
        print(f"completed {ended} tasks: {ended / elapsed:,.0f} tasks/s {dict(tally.ends)}")
        print(latency_line("wait until DONE (202 -> terminal seen)", tally.wait))
        print(latency_line("end to end (POST sent -> terminal seen)", tally.total))
    if tally.errors:
        print(f"errors: {dict(tally.errors)}")


@contextmanager
def stack(args: argparse.Namespace) -> Iterator[str]:
    """The API to load: --url (loopback only), or a private Redis + API + worker."""
    if args.url:
        yield loopback(args.url)
        return
    worker: dict[str, str | int] = {"max_concurrency": args.worker_concurrency, "log_level": "WARNING"}
    with (
        redis_url(None) as redis,
        worker_process(redis, **worker),
        api_process(redis, log_level="WARNING") as url,
    ):
        yield url


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Submit tasks concurrently and follow them to the end.")
    parser.add_argument("--url", help="a running API on loopback; default: start a private stack")
    parser.add_argument("--concurrency", type=int, default=200, help="concurrent submitters (200)")
    parser.add_argument("--requests", type=int, default=2000, help="tasks to submit in all (2000)")
    parser.add_argument("--duration", type=float, help="stop submitting after this many seconds")
    parser.add_argument("--follow", choices=["sse", "poll", "none"], default="sse")
    parser.add_argument("--poll-interval", type=float, default=0.05, help="seconds between GETs (0.05)")
    parser.add_argument("--params", default="{}", help="task params as JSON, e.g. '{\"duration\": 0.1}'")
    parser.add_argument("--worker-concurrency", type=int, default=500, help="own stack: MAX_CONCURRENCY")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-request timeout in seconds")
    args = parser.parse_args(argv)
    if args.duration is not None and args.requests == parser.get_default("requests"):
        args.requests = sys.maxsize  # --duration alone: as many as fit
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    with stack(args) as url, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        tally, elapsed = runner.run(load(url, args))
    report(url, args, tally, elapsed)
    return 0 if tally.submit and not tally.errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
