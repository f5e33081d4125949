"""Worker drain benchmark: how many no-op tasks per second one `python -m worker` finishes.

    python tools/worker_bench.py --tasks 50000 --concurrency 500

1. a private redis-server on a free port (or --redis-url, loopback only, under a fresh prefix);
2. N tasks submitted through TaskStore.submit (concurrent calls share pipelines), all PENDING;
3. one `python -m worker` process with HANDLER=tools.noop_handler:noop;
4. the clock runs from the worker's first read (the group has pending entries) until the stream
   is empty: every entry acknowledged, which the worker does only after writing DONE;
5. every task is checked: status DONE at seq 3 (PENDING 1 → RUNNING 2 → DONE 3), so every
   transition went through the transition script, which publishes each one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

if not __package__:  # run as `python tools/worker_bench.py`: import from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from taskstore import Keys, TaskQueue, TaskStore
from taskstore.depth import queue_depth
from tools.bench_common import NOOP_HANDLER, cpu_seconds, machine, redis_url, worker_process

POLL = 0.005


@dataclass
class Drain:
    tasks: int
    seconds: float
    worker_cpu: float
    redis_cpu: float

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds if self.seconds else 0.0


async def prefill(store: TaskStore, count: int, run: str, chunk: int = 2000) -> list[str]:
    """Submit `count` distinct tasks; their ids."""
    ids: list[str] = []
    for start in range(0, count, chunk):
        batch = range(start, min(count, start + chunk))
        subs = await asyncio.gather(*(store.submit(f"bench {run} {i}", {}) for i in batch))
        ids += [s.task_id for s in subs]
    return ids


async def pending(queue: TaskQueue) -> int:
    depth = await queue_depth(queue.redis, queue.keys)
    return depth.total.pending


async def wait_started(queue: TaskQueue, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while await queue.backlog() == total and await pending(queue) == 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"the worker did not start reading within {timeout:g} s")
        await asyncio.sleep(POLL)


async def wait_drained(queue: TaskQueue, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while await queue.backlog() > 0:
        if time.monotonic() > deadline:
            left = await queue.backlog()
            raise SystemExit(f"{left} entries still in the streams after {timeout:g} s")
        await asyncio.sleep(POLL)


async def redis_cpu(redis: Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def verify(redis: Redis, keys: Keys, ids: list[str]) -> tuple[int, int]:
    """How many tasks are DONE, and how many of those at seq 3."""
    done = at_three = 0
    for start in range(0, len(ids), 5000):
        async with redis.pipeline(transaction=False) as pipe:
            for task_id in ids[start : start + 5000]:
                pipe.hmget(keys.task(task_id), ["status", "seq"])
            replies: list[list[bytes | None]] = await pipe.execute()
        for status, seq in replies:
            if status == b"DONE":
                done += 1
                at_three += seq == b"3"
    return done, at_three


async def drain(args: argparse.Namespace, url: str, keys: Keys, total: int) -> Drain:
    settings: dict[str, str | int] = {
        "handler": NOOP_HANDLER,
        "max_concurrency": args.concurrency,
        "key_prefix": keys.prefix,
        "queue_key": keys.queue,
        "log_level": args.log_level,
        "result_expiry": 3600,
    }
    redis = Redis.from_url(url)
    try:
        with worker_process(url, **settings) as proc:
            await wait_started(TaskQueue(redis, keys), total, timeout=30)
            start, cpu0, rcpu0 = time.perf_counter(), cpu_seconds(proc.pid), await redis_cpu(redis)
            await wait_drained(TaskQueue(redis, keys), timeout=args.timeout)
            seconds = time.perf_counter() - start
            worker_cpu, rcpu = cpu_seconds(proc.pid) - cpu0, await redis_cpu(redis) - rcpu0
        return Drain(total, seconds, worker_cpu, rcpu)
    finally:
        await redis.aclose()


async def bench(args: argparse.Namespace, url: str) -> int:
    run = os.urandom(4).hex()
    keys = Keys(prefix=f"bench-{run}", queue=f"bench-{run}:stream")
    redis = Redis.from_url(url)
    try:
        store = TaskStore(redis, keys, result_ttl=3600, max_queue=0)
        await TaskQueue(redis, keys).ensure_group()  # at id 0: the worker reads every entry
        t0 = time.perf_counter()
        ids = await prefill(store, args.tasks, run)
        fill = time.perf_counter() - t0
        print(f"prefill: {len(ids)} tasks via TaskStore.submit in {fill:.2f} s ({len(ids) / fill:,.0f}/s)")
        result = await drain(args, url, keys, len(ids))
        done, at_three = await verify(redis, keys, ids)
        await redis.delete(*(shard.stream for shard in keys.all_shards))
    finally:
        await redis.aclose()
    report(args, result, done, at_three)
    return 0 if done == at_three == len(ids) else 1


def report(args: argparse.Namespace, result: Drain, done: int, at_three: int) -> None:
    print(f"machine: {machine()}")
    print(f"worker: MAX_CONCURRENCY={args.concurrency} HANDLER={NOOP_HANDLER} LOG_LEVEL={args.log_level}")
    print(f"drained {result.tasks} tasks in {result.seconds:.2f} s: {result.rate:,.0f} tasks/s")
    worker_load, redis_load = (result.worker_cpu / result.seconds, result.redis_cpu / result.seconds)
    per_task = result.worker_cpu / result.tasks * 1e6
    print(f"cpu: worker {worker_load:.0%} of a core ({per_task:.0f} µs a task), redis {redis_load:.0%}")
    print(f"verified: {done}/{result.tasks} DONE, {at_three} of them at seq 3 (PENDING→RUNNING→DONE)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time one worker process draining no-op tasks.")
    parser.add_argument("--tasks", type=int, default=50_000, help="tasks to pre-fill (default 50000)")
    parser.add_argument("--concurrency", type=int, default=500, help="the worker's MAX_CONCURRENCY")
    parser.add_argument("--log-level", default="WARNING", help="the worker's LOG_LEVEL (default WARNING)")
    parser.add_argument("--redis-url", help="a loopback Redis to use instead of a private one")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    args = parser.parse_args(argv)
    with redis_url(args.redis_url) as url:
        return asyncio.run(bench(args, url))


if __name__ == "__main__":
    raise SystemExit(main())
