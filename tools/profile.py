"""cProfile around the API's or the worker's entry point for N seconds; a .prof for snakeviz.

    python tools/profile.py api --seconds 20 --out api.prof
        (meanwhile: wrk, or python tools/load_test.py --url http://127.0.0.1:PORT)
    python tools/profile.py worker --seconds 20 --prefill 50000 --out worker.prof
    snakeviz api.prof

api:    uvicorn serving server.main:app in this process (httptools, uvloop, no access log) on
        127.0.0.1:PORT; the profile covers its event loop thread, where every request runs.
worker: worker.runner.run() in this process with HANDLER (default the no-op one), after
        --prefill tasks were queued, so the profile shows the worker's own cost per task.
Both use a private redis-server on a free port unless --redis-url names a loopback one.
For a sampling profile of a running process, with no restart, see py-spy in docs/performance.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as `python tools/profile.py`: import from the repository root, and
    # keep this file from shadowing the stdlib `profile` module, which cProfile imports
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import cProfile
import os
import pstats
import threading

import uvicorn
from redis.asyncio import Redis

from server.embedded_redis import free_port
from taskstore import TaskQueue, TaskStore
from taskstore.topology import Topology
from tools.bench_common import NOOP_HANDLER, redis_url
from worker.runner import run
from worker.settings import WorkerSettings


def profile_api(args: argparse.Namespace, redis: str, profiler: cProfile.Profile) -> None:
    os.environ.update(REDIS_URL=redis, LOG_LEVEL="WARNING")  # read by server.main at import
    port = args.port or free_port()
    config = uvicorn.Config(
        "server.main:app",
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )
    server = uvicorn.Server(config)
    timer = threading.Timer(args.seconds, lambda: setattr(server, "should_exit", True))
    print(f"profiling the API at http://127.0.0.1:{port} for {args.seconds:g} s", flush=True)
    timer.start()
    try:
        profiler.runcall(server.run)
    finally:
        timer.cancel()


def profile_worker(args: argparse.Namespace, redis: str, profiler: cProfile.Profile) -> None:
    settings = WorkerSettings(
        redis_url=redis, handler=args.handler, max_concurrency=args.concurrency, log_level="WARNING"
    )
    if args.prefill:
        asyncio.run(_prefill(settings, args.prefill))
        print(f"queued {args.prefill} tasks", flush=True)

    async def work() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(args.seconds, stop.set)
        await run(settings, stop)

    print(f"profiling the worker (HANDLER={args.handler}) for {args.seconds:g} s", flush=True)
    profiler.runcall(asyncio.run, work())


async def _prefill(settings: WorkerSettings, count: int) -> None:
    redis = Redis.from_url(settings.redis_url)
    keys = settings.keys_for(Topology(cluster=False))
    store, run = TaskStore(redis, keys, max_queue=0), os.urandom(4).hex()
    try:
        await TaskQueue(redis, keys).ensure_group()
        for start in range(0, count, 2000):
            batch = range(start, min(count, start + 2000))
            await asyncio.gather(*(store.submit(f"profile {run} {i}", {}) for i in batch))
    finally:
        await redis.aclose()


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Profile the API or the worker with cProfile.")
    parser.add_argument("target", choices=["api", "worker"])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to run (20)")
    parser.add_argument("--out", type=Path, help="the .prof file (default TARGET.prof)")
    parser.add_argument("--redis-url", help="a loopback Redis to use instead of a private one")
    parser.add_argument("--port", type=int, default=0, help="api: the port (default a free one)")
    parser.add_argument("--prefill", type=int, default=0, help="worker: tasks to queue first")
    parser.add_argument("--concurrency", type=int, default=500, help="worker: MAX_CONCURRENCY (500)")
    parser.add_argument("--handler", default=NOOP_HANDLER, help=f"worker: HANDLER ({NOOP_HANDLER})")
    parser.add_argument("--top", type=int, default=15, help="functions to print, by own time (15)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    out: Path = args.out or Path(f"{args.target}.prof")
    profiler = cProfile.Profile()
    with redis_url(args.redis_url) as redis:
        if args.target == "api":
            profile_api(args, redis, profiler)
        else:
            profile_worker(args, redis, profiler)
    profiler.dump_stats(out)
    print(f"wrote {out}; open it with: snakeviz {out}")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
