"""Progress-flood benchmark: what one task reporting progress in a tight loop costs Redis.

    python tools/progress_bench.py --seconds 3 --rates 0,10

For each PROGRESS_RATE (0 = every report written, as before progress was merged), on one private
redis-server: one `python -m worker` (HANDLER=tools.flood_handler:flood) runs one task that
calls ctx.progress() as fast as it can for --seconds. Printed per rate: the Redis commands per
second while it ran (INFO stats), EVALSHA and PUBLISH counts (INFO commandstats), the events the
task published (its seq), the progress() calls the handler made, and the worker's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

if not __package__:  # run as `python tools/progress_bench.py`: import from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from taskstore import Keys, TaskStore, decode_state
from tools.bench_common import cpu_seconds, machine, redis_url, worker_process

FLOOD_HANDLER = "tools.flood_handler:flood"


@dataclass
class Flood:
    rate: float
    seconds: float
    commands: int
    evalsha: int
    publish: int
    seq: int
    calls: int
    worker_cpu: float


async def _stats(redis: Redis) -> tuple[int, int, int]:
    """Commands processed so far, and the EVALSHA and PUBLISH calls among them."""
    total = int((await redis.info("stats"))["total_commands_processed"])
    commands: dict[str, Any] = await redis.info("commandstats")
    return total, _calls(commands, "evalsha"), _calls(commands, "publish")


def _calls(commands: dict[str, Any], name: str) -> int:
    return int(commands.get(f"cmdstat_{name}", {}).get("calls", 0))


async def _final(store: TaskStore, task_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = decode_state(await store.state(task_id))
        if state["status"] in ("DONE", "FAILED"):
            return state
        if time.monotonic() > deadline:
            raise SystemExit(f"task {task_id} did not end within {timeout:g} s")
        await asyncio.sleep(0.05)


async def flood(url: str, rate: float, seconds: float) -> Flood:
    """One flood task under PROGRESS_RATE=`rate`, measured from its submission to its end."""
    redis = Redis.from_url(url)
    store = TaskStore(redis, Keys(), max_queue=0)
    try:
        with worker_process(
            url, handler=FLOOD_HANDLER, progress_rate=f"{rate:g}", log_level="WARNING"
        ) as proc:
            await asyncio.sleep(1.0)  # the worker is up and idle before the clock starts
            before, cpu0, start = await _stats(redis), cpu_seconds(proc.pid), time.perf_counter()
            sub = await store.submit(f"flood at rate {rate:g}", {"seconds": seconds})
            state = await _final(store, sub.task_id, timeout=seconds + 30)
            took, cpu = time.perf_counter() - start, cpu_seconds(proc.pid) - cpu0
            after = await _stats(redis)
        commands, evalsha, publish = (a - b for a, b in zip(after, before, strict=True))
        return Flood(rate, took, commands, evalsha, publish, state["seq"], state["result"]["calls"], cpu)
    finally:
        await redis.aclose()


def report(results: list[Flood]) -> None:
    print(f"machine: {machine()}")
    heads = [("PROGRESS_RATE", 13), ("cmds/s", 9), ("EVALSHA", 8), ("PUBLISH", 8), ("seq", 7), ("calls", 10)]
    print(" ".join(f"{name:>{width}}" for name, width in [*heads, ("worker", 7)]))
    for r in results:
        rate = f"{r.rate:g}" + (" (off)" if r.rate == 0 else "")
        cps = r.commands / r.seconds
        cpu = f"{r.worker_cpu / r.seconds:.0%}"
        print(f"{rate:>13} {cps:9,.0f} {r.evalsha:8,} {r.publish:8,} {r.seq:7,} {r.calls:10,} {cpu:>7}")
    print("cmds/s: Redis commands a second from submit to the end (INFO stats; a script's own calls")
    print("count too); seq: events of the task; calls: ctx.progress() calls the handler made;")
    print("worker: the worker's CPU as a share of one core")


async def bench(url: str, rates: list[float], seconds: float) -> None:
    report([await flood(url, rate, seconds) for rate in rates])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Redis load of a task flooding progress, per PROGRESS_RATE.")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long the handler floods")
    parser.add_argument("--rates", default="0,10", help="PROGRESS_RATE values to compare (0 = off)")
    parser.add_argument("--redis-url", help="a loopback Redis to use instead of a private one")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    with redis_url(args.redis_url) as url:
        asyncio.run(bench(url, rates, args.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
