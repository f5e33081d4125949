"""Single node vs 3-primary Redis Cluster, in one run on this machine.

    python tools/cluster_bench.py [--seconds 10] [--tasks 20000] [--latency-runs 300]
    python tools/cluster_bench.py --wait-cost     # P1 with and without SUBMIT_WAIT_REPLICAS=1

For each topology (a private redis-server, then a private 3-primary cluster, both on loopback):
  P1  POST /tasks req/s: one API process, wrk -t2 -c64 with tools/wrk_post.lua (distinct bodies)
  P2  worker drain: TASKS no-op tasks queued first, then one worker (MAX_CONCURRENCY 500) drains them
  P3  submit -> terminal SSE event, p50/p99: one no-op task at a time, its stream opened after POST
  idle  Redis commands/s of an idle worker (INFO commandstats over 5 s, nothing else running)
  cost  per task over P2 (submit, run, acknowledge), from INFO summed over the primaries: Redis
        commands (commandstats; the calls inside scripts count too), bytes in+out, events
        published (PUBLISH/SPUBLISH calls) and Redis CPU time (used_cpu_user + used_cpu_sys)

P1 and P2 are the best of --rounds turns, P3 is pooled over them; the topologies take turns, so
the noise of a shared machine falls on both.

One 2-core machine cannot show a cluster's gain (the three primaries share the cores with the
API, the worker and wrk); what it shows is what the cluster path costs.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from redis import Redis as SyncRedis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.embedded_cluster import EmbeddedCluster
from server.embedded_redis import EmbeddedRedis
from taskstore import TaskQueue, TaskStore
from taskstore.config import StoreConfig
from taskstore.topology import detect, make_client
from tools.bench_common import NOOP_HANDLER, ROOT, api_process, machine, percentile, worker_process


@dataclass
class Figures:
    name: str
    p1: float = 0.0
    p2: float = 0.0
    p3: list[float] = field(default_factory=list)
    idle: float = 0.0
    commands: float = 0.0
    bytes: float = 0.0
    published: float = 0.0
    cpu_us: float = 0.0


@dataclass(frozen=True)
class Counters:
    commands: int
    bytes: int
    published: int
    cpu: float  # seconds of Redis CPU (user + sys), summed over the primaries


class Target:
    """The Redis under test: its URL and the ports of its primaries (for INFO)."""

    def __init__(self, url: str, ports: list[int]) -> None:
        self.url = url
        self.ports = ports

    def counters(self) -> Counters:
        commands = net = published = 0
        cpu = 0.0
        for port in self.ports:
            with SyncRedis(port=port) as r:
                stats = r.info("commandstats")
                traffic = r.info("stats")
                used = r.info("cpu")
            cpu += float(used["used_cpu_user"]) + float(used["used_cpu_sys"])
            commands += sum(int(v["calls"]) for v in stats.values())
            published += sum(
                int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("publish", "spublish")
            )
            net += int(traffic["total_net_input_bytes"]) + int(traffic["total_net_output_bytes"])
        return Counters(commands, net, published, cpu)

    def reset(self) -> None:
        for port in self.ports:
            with SyncRedis(port=port) as r:
                r.flushall()
                r.config_resetstat()


@contextmanager
def single() -> Iterator[Target]:
    redis = EmbeddedRedis().start()
    try:
        yield Target(redis.url, [redis.port])
    finally:
        redis.remove()


@contextmanager
def cluster() -> Iterator[Target]:
    nodes = EmbeddedCluster(primaries=3).start()
    try:
        yield Target(nodes.url, nodes.primary_ports())
    finally:
        nodes.remove()


def p1(url: str, seconds: float) -> float:
    """wrk's Requests/sec against POST /tasks (after a 2 s warm-up)."""
    script = str(ROOT / "tools" / "wrk_post.lua")
    base = ["wrk", "-t2", "-c64", "-s", script, f"{url}/tasks"]
    subprocess.run([*base[:3], "-d2s", *base[3:]], capture_output=True, check=True)
    out = subprocess.run(
        [*base[:3], f"-d{seconds:g}s", *base[3:]], capture_output=True, text=True, check=True
    )
    found = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if found is None:
        raise SystemExit(f"no Requests/sec in wrk's output:\n{out.stdout}")
    return float(found.group(1))


async def p2(target: Target, tasks: int) -> float:
    """No-op tasks per second one worker drains from a full queue."""
    topology = await detect(target.url)
    redis = make_client(target.url, topology)
    try:
        keys = StoreConfig().keys_for(topology)
        queue = TaskQueue(redis, keys)
        await queue.ensure_group()
        store = TaskStore(redis, keys, max_queue=0)
        for start in range(0, tasks, 2000):
            await asyncio.gather(
                *(store.submit(f"drain {i}", {}) for i in range(start, min(tasks, start + 2000)))
            )
        with worker_process(target.url, handler=NOOP_HANDLER, max_concurrency=500, log_level="WARNING"):
            while await queue.backlog() == tasks:
                await asyncio.sleep(0.005)
            started = time.perf_counter()
            while await queue.backlog() > 0:
                await asyncio.sleep(0.005)
            return tasks / (time.perf_counter() - started)
    finally:
        await redis.aclose()


async def p3(url: str, runs: int) -> list[float]:
    """Seconds from POST to the terminal SSE event, one task at a time."""
    seconds = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for i in range(runs):
            started = time.perf_counter()
            answer = await client.post("/tasks", json={"prompt": f"latency {i} {started}", "params": {}})
            task_id = answer.json()["task_id"]
            async with client.stream("GET", f"/tasks/{task_id}/events") as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:") and '"status":"DONE"' in line:
                        seconds.append(time.perf_counter() - started)
                        break
    return seconds


def idle_rate(target: Target, seconds: float) -> float:
    """Redis commands per second while one worker (and nothing else) waits for work."""
    with worker_process(target.url, handler=NOOP_HANDLER, log_level="WARNING"):
        time.sleep(1.5)  # start-up: group creation, script loads
        before = target.counters().commands
        time.sleep(seconds)
        after = target.counters().commands
    return (after - before - len(target.ports) * 2) / seconds  # minus our own two INFO calls per node


def measure(targets: dict[str, Target], args: argparse.Namespace) -> list[Figures]:
    """Every figure of both topologies; P1 and P2 best of ROUNDS, taken in turns (a shared
    machine's noise then hits both alike), P3 in turns of RUNS/ROUNDS tasks."""
    rows = {name: Figures(name) for name in targets}
    for name, target in targets.items():
        target.reset()
        rows[name].idle = idle_rate(target, args.idle_seconds)
    for _ in range(args.rounds):
        for name, target in targets.items():
            target.reset()
            with api_process(target.url, log_level="WARNING") as url:
                rows[name].p1 = max(rows[name].p1, p1(url, args.seconds))
        for name, target in targets.items():
            target.reset()
            before = target.counters()
            rows[name].p2 = max(rows[name].p2, asyncio.run(p2(target, args.tasks)))
            _cost(rows[name], before, target.counters(), args.tasks)
        for name, target in targets.items():
            target.reset()
            with api_process(target.url, log_level="WARNING") as url:
                with worker_process(target.url, handler=NOOP_HANDLER, log_level="WARNING"):
                    rows[name].p3 += asyncio.run(p3(url, args.latency_runs // args.rounds))
    return list(rows.values())


def _cost(row: Figures, before: Counters, after: Counters, tasks: int) -> None:
    """Per task over a P2 run: each task submitted (the API's script), run and acknowledged."""
    row.commands = (after.commands - before.commands) / tasks
    row.bytes = (after.bytes - before.bytes) / tasks
    row.published = (after.published - before.published) / tasks
    row.cpu_us = (after.cpu - before.cpu) / tasks * 1e6


def wait_cost(args: argparse.Namespace) -> None:
    """P1 on 3 primaries with a replica each, without and with SUBMIT_WAIT_REPLICAS=1, in turns."""
    best = {0: 0.0, 1: 0.0}
    nodes = EmbeddedCluster(primaries=3, replicas=1).start()
    try:
        nodes.wait_replicated()
        target = Target(nodes.url, nodes.primary_ports())
        for _ in range(args.rounds):
            for replicas in best:
                target.reset()
                with api_process(target.url, log_level="WARNING", submit_wait_replicas=replicas) as url:
                    best[replicas] = max(best[replicas], p1(url, args.seconds))
    finally:
        nodes.remove()
    print(f"machine: {machine()}")
    print(f"P1 on 3 primaries + 3 replicas: {best[0]:,.0f} req/s; with SUBMIT_WAIT_REPLICAS=1:")
    print(f"{best[1]:,.0f} req/s ({best[1] / best[0]:.2f}x)")


def report(rows: list[Figures]) -> None:
    print(f"machine: {machine()}")
    header = f"{'':10} {'P1 req/s':>10} {'P2 tasks/s':>11} {'P3 p50 ms':>10} {'P3 p99 ms':>10}"
    print(
        header
        + f" {'idle cmd/s':>11} {'cmds/task':>10} {'bytes/task':>11} {'pub/task':>9} {'cpu µs/task':>12}"
    )
    for f in rows:
        p50, p99 = percentile(f.p3, 50) * 1000, percentile(f.p3, 99) * 1000
        print(
            f"{f.name:10} {f.p1:10,.0f} {f.p2:11,.0f} {p50:10.2f} {p99:10.2f}"
            f" {f.idle:11.1f} {f.commands:10.2f} {f.bytes:11,.0f} {f.published:9.2f} {f.cpu_us:12.1f}"
        )
    one, many = rows
    p50s = percentile(many.p3, 50) / percentile(one.p3, 50)
    print(
        f"cluster / single: P1 {many.p1 / one.p1:.2f}x (target >= 0.85), P2 {many.p2 / one.p2:.2f}x"
        f" (target >= 0.85), P3 p50 {p50s:.2f}x (target <= 1.2)"
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Single node vs 3-primary cluster, side by side.")
    parser.add_argument("--seconds", type=float, default=10.0, help="wrk duration for P1 (10)")
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks drained in P2 (20000)")
    parser.add_argument("--latency-runs", type=int, default=300, help="tasks timed in P3 (300)")
    parser.add_argument("--rounds", type=int, default=3, help="turns of each measurement (3)")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="idle measurement (5)")
    parser.add_argument("--wait-cost", action="store_true", help="only P1 with and without WAIT")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.wait_cost:
        wait_cost(args)
        return 0
    with single() as one, cluster() as many:
        rows = measure({"single": one, "cluster": many}, args)
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
