"""What one open dashboard costs a busy service: API CPU and Redis work, with and without it.

    python tools/dash_bench.py --rate 1000 --phase 20 --repeats 4            # single Redis node
    python tools/dash_bench.py --rate 1000 --phase 20 --repeats 2 --cluster  # 3-primary cluster
    python tools/dash_bench.py ... --server-root /tmp/before                 # another checkout

It starts its own stack on loopback (a private redis-server or 3-primary cluster, one API
process, --workers worker processes running a no-op handler). First, with no task load, it
alternates phases without and with one dashboard client (a WebSocket on /dashboard/ws that lists
tasks and reads every frame, as the page does); then it submits --rate tasks/s and alternates
again, so both sides see the same load:

    idle off | idle on | warm-up | off | on | off | on ...      each phase --phase seconds

Per phase: tasks submitted/s, API CPU % (of one core, /proc), Redis CPU % and Redis commands/s
(INFO, summed over the primaries), and the dashboard's own Redis commands/s:
  feed sent      script calls and reads of the shared feed (taskcast_ops_redis_commands_total
                 on /metrics, where="sent"); feed inside: the commands those scripts ran
  (un)subscribe  the hub's SUBSCRIBE/UNSUBSCRIBE (SSUBSCRIBE/SUNSUBSCRIBE on a cluster) for the
                 rows the page shows (INFO commandstats: nothing else subscribes here)
  rows           rows pushed into the live list; their states are read in the feed's calls
                 (an HMGET each inside them), so they are counted there
  all            feed sent + feed inside + (un)subscribes: by Redis's own count, everything the
                 dashboard costs
The idle pair also gives Redis's own count of everything the dashboard adds (on minus off).

On a busy machine the phases' CPU figures are noisy; a profile attributes the cost instead:

    python tools/profile.py api --seconds 40 --port 8123 --redis-url redis://127.0.0.1:RPORT &
    REDIS_URL=redis://127.0.0.1:RPORT HANDLER=tools.noop_handler:noop MAX_CONCURRENCY=200 python -m worker &
    python tools/dash_bench.py --drive http://127.0.0.1:8123 --phase 30   # load + one dashboard
    python tools/dash_bench.py --share api.prof    # share of the API's CPU time on the dashboard
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvloop
import websockets
from redis.asyncio import Redis

if not __package__:  # run as `python tools/dash_bench.py`: import from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from server.embedded_cluster import EmbeddedCluster
from tools.bench_common import (
    NOOP_HANDLER,
    ROOT,
    api_child_at,
    child,
    child_env,
    cpu_seconds,
    loopback,
    machine,
    redis_url,
)
from tools.push_bench import KeepAlive


@dataclass
class Load:
    rate: float
    sent: int = 0
    errors: int = 0
    start: float = field(default_factory=time.perf_counter)
    _slots: int = 0

    def next_slot(self) -> float:
        """When the next POST is due. Fallen behind (the machine is busy), the schedule starts
        again from now rather than bursting to catch up, which would skew a phase's rate."""
        self.sent += 1
        self._slots += 1
        due = self.start + self._slots / self.rate
        now = time.perf_counter()
        if now - due > 0.1:
            self.start, self._slots = now, 0
            return now
        return due


@dataclass
class Sample:
    wall: float
    api_cpu: float
    redis_cpu: float
    commands: int
    sent: int
    calls: dict[str, int]
    feed: dict[str, float]


@dataclass
class Phase:
    name: str
    rate: float
    api_cpu: float
    redis_cpu: float
    commands: float
    frames: int = 0
    calls: dict[str, float] = field(default_factory=dict)
    feed: dict[str, float] = field(default_factory=dict)
    rows: float = 0.0


SUBSCRIBES = ("subscribe", "unsubscribe", "ssubscribe", "sunsubscribe")


async def submitter(host: str, port: int, load: Load, stop: asyncio.Event) -> None:
    conn = KeepAlive(*await asyncio.open_connection(host, port))
    while not stop.is_set():
        delay = load.next_slot() - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            await conn.post_task(f"dash bench {os.urandom(8).hex()}")
        except RuntimeError:
            load.errors += 1
    conn.writer.close()


async def dashboard(ws_url: str, stop: asyncio.Event, frames: list[str], rows: list[int]) -> None:
    """One page's worth of traffic: list the newest tasks, then read every frame pushed."""
    async with websockets.connect(f"{ws_url}/dashboard/ws", max_size=None) as ws:
        await ws.send(orjson.dumps({"op": "list", "limit": 50}).decode())
        while not stop.is_set():
            try:
                frame = orjson.loads(await asyncio.wait_for(ws.recv(), timeout=0.5))
            except TimeoutError:
                continue
            frames.append(frame["type"])
            if frame["type"] == "rows" and frame["mode"] == "prepend":
                rows.append(len(frame["rows"]))


async def sample(nodes: list[Redis], url: str, api_pid: int, load: Load) -> Sample:
    """INFO summed over the Redis primaries, the API's CPU time and its dashboard feed counters."""
    redis_cpu, commands, calls = 0.0, 0, dict[str, int]()
    for node in nodes:
        cpu: dict[str, Any] = await node.info("cpu")
        stats: dict[str, Any] = await node.info("stats")
        by_command: dict[str, Any] = await node.info("commandstats")
        redis_cpu += float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
        commands += int(stats["total_commands_processed"])
        for name, v in by_command.items():
            calls[name.removeprefix("cmdstat_")] = calls.get(name.removeprefix("cmdstat_"), 0) + int(
                v["calls"]
            )
    return Sample(
        time.perf_counter(),
        cpu_seconds(api_pid),
        redis_cpu,
        commands,
        load.sent,
        calls,
        await feed_counts(url),
    )


async def feed_counts(url: str) -> dict[str, float]:
    """taskcast_ops_redis_commands_total by `where` from the API's /metrics."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{url}/metrics")).text
    found = {}
    for line in text.splitlines():
        if line.startswith("taskcast_ops_redis_commands_total{"):
            where = line.split('where="', 1)[1].split('"', 1)[0]
            found[where] = float(line.rsplit(" ", 1)[1])
    return found


def phase(name: str, before: Sample, after: Sample, frames: int = 0, rows: int = 0) -> Phase:
    wall = after.wall - before.wall
    return Phase(
        name,
        (after.sent - before.sent) / wall,
        100 * (after.api_cpu - before.api_cpu) / wall,
        100 * (after.redis_cpu - before.redis_cpu) / wall,
        (after.commands - before.commands) / wall,
        frames,
        {name: (n - before.calls.get(name, 0)) / wall for name, n in after.calls.items()},
        {where: (n - before.feed.get(where, 0.0)) / wall for where, n in after.feed.items()},
        rows / wall,
    )


async def run_phases(args: argparse.Namespace, url: str, ports: list[int], api_pid: int) -> list[Phase]:
    host, port = url.removeprefix("http://").split(":")
    load, stop = Load(args.rate), asyncio.Event()
    nodes = [Redis(host="127.0.0.1", port=p) for p in ports]
    phases, senders = [], []
    try:
        for name in ("idle off", "idle on"):
            phases.append(await one_phase(name, args, url, nodes, api_pid, load))
        load.start = time.perf_counter()
        senders = [
            asyncio.create_task(submitter(host, int(port), load, stop)) for _ in range(args.connections)
        ]
        await asyncio.sleep(args.warmup)
        for _ in range(args.repeats):
            for name in ("off", "on"):
                phases.append(await one_phase(name, args, url, nodes, api_pid, load))
    finally:
        stop.set()
        await asyncio.gather(*senders, return_exceptions=True)
        for node in nodes:
            await node.aclose()
    if load.errors:
        print(f"POST errors: {load.errors}")
    return phases


async def one_phase(
    name: str, args: argparse.Namespace, url: str, nodes: list[Redis], api_pid: int, load: Load
) -> Phase:
    frames: list[str] = []
    rows: list[int] = []
    stop = asyncio.Event()
    page = None
    if name.endswith("on"):
        page = asyncio.create_task(dashboard(url.replace("http://", "ws://"), stop, frames, rows))
        await asyncio.sleep(1.5)  # connected, listed, the feed's start-up reads (backfill) done
    before = await sample(nodes, url, api_pid, load)
    await asyncio.sleep(args.phase)
    after = await sample(nodes, url, api_pid, load)
    stop.set()
    if page is not None:
        await page
    return phase(name, before, after, len(frames), sum(rows))


def report(args: argparse.Namespace, phases: list[Phase]) -> None:
    print(f"machine: {machine()}")
    topology = "3-primary Redis Cluster" if args.cluster else "single Redis node"
    print(
        f"{topology}; target rate {args.rate:g} tasks/s, {args.workers} worker(s), phases of {args.phase:g} s"
    )
    print(
        f"{'phase':9} {'tasks/s':>8} {'API CPU %':>10} {'Redis CPU %':>12} {'Redis cmd/s':>12} {'frames':>7}"
        f" {'feed sent/s':>12} {'feed inside/s':>14} {'(un)sub/s':>10} {'rows/s':>7}"
    )
    for p in phases:
        subs = sum(p.calls.get(name, 0.0) for name in SUBSCRIBES)
        print(
            f"{p.name:9} {p.rate:8.0f} {p.api_cpu:10.1f} {p.redis_cpu:12.1f} {p.commands:12.0f} {p.frames:7d}"
            f" {p.feed.get('sent', 0):12.1f} {p.feed.get('in_scripts', 0):14.1f} {subs:10.1f} {p.rows:7.1f}"
        )
    idle_off, idle_on = phases[0], phases[1]
    extra = idle_on.commands - idle_off.commands
    print(
        f"idle, Redis's own count: {extra:.1f} commands/s more with the dashboard"
        " (total_commands_processed: the commands sent and those run inside scripts)"
    )
    off = [p for p in phases if p.name == "off"]
    on = [p for p in phases if p.name == "on"]

    def mean(ps: list[Phase], attr: str) -> float:
        return statistics.fmean(getattr(p, attr) for p in ps)

    api_off, api_on = mean(off, "api_cpu"), mean(on, "api_cpu")
    per_k_off = 1000 * api_off / mean(off, "rate")
    per_k_on = 1000 * api_on / mean(on, "rate")
    print(f"API CPU: {api_off:.1f} % without, {api_on:.1f} % with one dashboard: x{api_on / api_off:.3f}")
    ratio = per_k_on / per_k_off
    print(f"API CPU per 1,000 tasks/s: {per_k_off:.1f} % without, {per_k_on:.1f} % with: x{ratio:.3f}")
    print(f"Redis CPU: {mean(off, 'redis_cpu'):.1f} % without, {mean(on, 'redis_cpu'):.1f} % with")
    for label, ps in (("idle", [idle_on]), (f"at {mean(on, 'rate'):.0f} tasks/s", on)):
        sent = statistics.fmean(p.feed.get("sent", 0.0) for p in ps)
        inside = statistics.fmean(p.feed.get("in_scripts", 0.0) for p in ps)
        subs = statistics.fmean(sum(p.calls.get(n, 0.0) for n in SUBSCRIBES) for p in ps)
        rows = statistics.fmean(p.rows for p in ps)
        print(
            f"dashboard's Redis commands/s {label}: feed {sent:.1f} sent"
            f" ({inside:.1f} run inside its scripts); list tail {subs:.1f} (un)subscribes"
            f" for {rows:.1f} rows/s; all {sent + inside + subs:.1f}"
        )
    print(f"dashboard frames: {mean(on, 'frames') / args.phase:.1f} per second")


# The dashboard path: the shared feed, the sessions, and the hub work for their rows (nothing else
# in a --drive run watches tasks). Coroutine entry points, so their cumulative times do not nest.
SHARE = {
    "opsfeed.py": ("_tick",),
    "dashboard_session.py": ("send_forever", "receive_forever", "tail_forever"),
    "hub.py": ("watch", "follow", "unwatch", "_dispatch"),
}


def share(path: str) -> None:
    stats = pstats.Stats(path)
    spent = sum(
        cumulative
        for (filename, _, name), (_, _, _, cumulative, _) in stats.stats.items()  # type: ignore[attr-defined]
        if name in SHARE.get(Path(filename).name, ())
    )
    total = stats.total_tt  # type: ignore[attr-defined]
    print(
        f"dashboard path: {spent:.3f} s of {total:.3f} s of the API's CPU time = {100 * spent / total:.2f} %"
    )


async def drive(url: str, args: argparse.Namespace) -> None:
    host, port = url.removeprefix("http://").split(":")
    load, stop, frames, rows = Load(args.rate), asyncio.Event(), list[str](), list[int]()
    senders = [asyncio.create_task(submitter(host, int(port), load, stop)) for _ in range(args.connections)]
    page = asyncio.create_task(dashboard(url.replace("http://", "ws://"), stop, frames, rows))
    await asyncio.sleep(args.phase)
    stop.set()
    await asyncio.gather(*senders, page)
    print(f"submitted {load.sent / args.phase:.0f} tasks/s; the dashboard read {len(frames)} frames")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="API and Redis cost of one open dashboard under load.")
    parser.add_argument("--rate", type=float, default=1000.0, help="tasks submitted per second (1000)")
    parser.add_argument("--phase", type=float, default=15.0, help="seconds per phase (15)")
    parser.add_argument("--repeats", type=int, default=2, help="off/on pairs (2)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before measuring (5)")
    parser.add_argument("--connections", type=int, default=32, help="submitting connections (32)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (1)")
    parser.add_argument("--cluster", action="store_true", help="on a private 3-primary Redis Cluster")
    parser.add_argument(
        "--server-root",
        type=Path,
        default=ROOT,
        help="run the API and worker from this checkout (to compare)",
    )
    parser.add_argument("--drive", metavar="URL", help="only load a running API (loopback) + one dashboard")
    parser.add_argument("--share", metavar="PROF", help="only print the dashboard's share of a profile")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.share:
        share(args.share)
        return 0
    if args.drive:
        uvloop.run(drive(loopback(args.drive), args))
        return 0
    worker_settings: dict[str, str | int] = {
        "handler": NOOP_HANDLER,
        "max_concurrency": 200,
        "log_level": "WARNING",
    }
    with ExitStack() as stack:
        if args.cluster:
            nodes = EmbeddedCluster(primaries=3).start()
            stack.callback(nodes.remove)
            redis, ports = nodes.url, nodes.primary_ports()
        else:
            redis = stack.enter_context(redis_url(None))
            ports = [int(redis.rsplit(":", 1)[1].split("/")[0])]
        api_settings: dict[str, str | int] = {"log_level": "WARNING", "max_queue_length": 0}
        url, api = stack.enter_context(api_child_at(args.server_root, redis, api_settings))
        for _ in range(args.workers):
            env = {**child_env(redis, **worker_settings), "PYTHONPATH": str(args.server_root)}
            stack.enter_context(child([sys.executable, "-m", "worker"], env, cwd=args.server_root))
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            phases = runner.run(run_phases(args, url, ports, api.pid))
    report(args, phases)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
