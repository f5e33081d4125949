"""POST /tasks req/s with and without an Idempotency-Key, coalescing on and off, against a
baseline build, all in one run (rounds interleaved, so machine noise hits every variant alike).

    git archive main | (mkdir -p /tmp/taskcast-base && tar -x -C /tmp/taskcast-base)
    python tools/submit_bench.py --baseline /tmp/taskcast-base --rounds 3 --seconds 10

Each variant: a fresh private Redis database, one API process (uvicorn, httptools + uvloop,
LOG_LEVEL=WARNING, MAX_QUEUE_LENGTH=0), wrk -t2 -c64 with tools/wrk_post.lua (a distinct prompt
per request, so no answer comes from the cache or is coalesced; `key` adds a distinct
Idempotency-Key per request). Prints each run, then each variant's medians and their ratios to
the baseline's: req/s, and the API process's CPU time per request, which a busy machine hardly
moves (req/s on a loaded machine scatters by tens of percent; on a quiet one it is about the
inverse of the CPU time, the API process being the bottleneck).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

if not __package__:  # `python tools/submit_bench.py`: import `tools` from the checkout
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from redis import Redis

from server.embedded_redis import free_port
from tools.bench_common import (
    ROOT,
    api_command,
    child,
    child_env,
    cpu_seconds,
    machine,
    redis_url,
    wait_healthy,
)

WRK_SCRIPT = ROOT / "tools" / "wrk_post.lua"


@dataclass(frozen=True)
class Variant:
    name: str
    tree: Path
    coalesce: bool = True
    key: bool = False


def variants(baseline: Path | None) -> list[Variant]:
    found = [
        Variant("kinds, coalesce on, no key", ROOT),
        Variant("kinds, coalesce on, Idempotency-Key", ROOT, key=True),
        Variant("kinds, coalesce off, no key", ROOT, coalesce=False),
        Variant("kinds, coalesce off, Idempotency-Key", ROOT, coalesce=False, key=True),
    ]
    return [Variant("baseline", baseline.resolve()), *found] if baseline else found


@dataclass(frozen=True)
class Run:
    rate: float  # req/s
    cpu_us: float  # API process CPU time per request
    p99: str


def run_wrk(url: str, pid: int, seconds: int, key: bool) -> Run:
    """One wrk run (after a 2 s warm-up) and the API's CPU time over it."""
    args = ["wrk", "-t2", "-c64", "--latency", "-s", str(WRK_SCRIPT), f"{url}/tasks"]
    extra = ["--", "key"] if key else []
    subprocess.run([*args[:3], "-d2s", *args[3:], *extra], check=True, capture_output=True)
    cpu_before = cpu_seconds(pid)
    out = subprocess.run([*args[:3], f"-d{seconds}s", *args[3:], *extra], check=True, capture_output=True)
    cpu = cpu_seconds(pid) - cpu_before
    text = out.stdout.decode()
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    count = re.search(r"(\d+) requests in", text)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.MULTILINE)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if rate is None or count is None or errors is not None:
        raise RuntimeError(f"wrk failed or got errors:\n{text}")
    return Run(float(rate.group(1)), cpu / int(count.group(1)) * 1e6, p99.group(1) if p99 else "?")


def api_env(variant: Variant, redis: str) -> dict[str, str]:
    """The API's environment for `variant`: its tree's code, no queue limit, WARNING logs."""
    env = child_env(redis, max_queue_length=0, log_level="WARNING", coalesce=str(variant.coalesce).lower())
    env["PYTHONPATH"] = str(variant.tree)
    return env


def measure(variant: Variant, redis: str, seconds: int) -> Run:
    with Redis.from_url(redis) as client:
        client.flushdb()
    port = free_port()
    with child(api_command(port), api_env(variant, redis), cwd=variant.tree) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        return run_wrk(url, proc.pid, seconds, variant.key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--baseline", type=Path, help="a checkout of the build to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--redis-url", help="a loopback Redis to use (its database is flushed)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not on PATH (apt-get install wrk)")
    chosen = variants(args.baseline)
    runs: dict[str, list[Run]] = {v.name: [] for v in chosen}
    print(f"machine: {machine()}")
    with redis_url(args.redis_url) as redis:
        for round_no in range(1, args.rounds + 1):
            for variant in chosen:
                run = measure(variant, redis, args.seconds)
                runs[variant.name].append(run)
                figures = f"{run.rate:7.0f} req/s  {run.cpu_us:5.0f} us CPU/req  p99 {run.p99}"
                print(f"round {round_no}  {variant.name:<38} {figures}", flush=True)
    report(runs, "baseline" if args.baseline else None)
    return 0


def report(runs: dict[str, list[Run]], baseline: str | None) -> None:
    medians = {
        name: (statistics.median(r.rate for r in rs), statistics.median(r.cpu_us for r in rs))
        for name, rs in runs.items()
    }
    base_rate, base_cpu = medians[baseline] if baseline else (0.0, 0.0)
    for name, (rate, cpu_us) in medians.items():
        ratios = f"  {rate / base_rate:.2f}x req/s, {base_cpu / cpu_us:.2f}x by CPU" if baseline else ""
        print(f"median  {name:<38} {rate:7.0f} req/s  {cpu_us:5.0f} us CPU/req{ratios}")


if __name__ == "__main__":
    sys.exit(main())
