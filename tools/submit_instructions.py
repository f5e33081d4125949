"""The API process's cost of a POST /tasks counted in instructions, which machine noise does not
move.

    git archive 7c53611 | (mkdir -p /tmp/taskcast-base && tar -x -C /tmp/taskcast-base)
    python tools/submit_instructions.py --baseline /tmp/taskcast-base

Req/s and CPU time per request (tools/submit_bench.py) scatter by tens of percent when other
work shares the machine's two cores. This counts instructions instead (valgrind's callgrind,
repeatable to about a percent whatever else runs). Each variant runs as the benchmarks run the
API (uvicorn, httptools, uvloop, one process, LOG_LEVEL=WARNING, MAX_QUEUE_LENGTH=0, a private
redis-server), under callgrind; a lean client (raw sockets, 64 keep-alive connections, a distinct
prompt and, where used, a distinct Idempotency-Key per request) sends --warmup requests, the
counters are zeroed, --requests more are sent and the counters dumped: instructions per request
of the whole API process, HTTP parsing included; the kernel's socket work is not counted.
Valgrind slows Python about 50 times: the default run takes about 10 minutes.
`--cpu` runs the same without valgrind and reports CPU time instead (a quick check).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

if not __package__:  # `python tools/submit_instructions.py`: import `tools` from the checkout
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from server.embedded_redis import free_port
from tools.bench_common import api_command, child, cpu_seconds, redis_url, wait_healthy
from tools.submit_bench import Variant, api_env, variants

CONNECTIONS = 64
TOTALS = re.compile(rb"^(?:summary|totals): (\d+)", re.MULTILINE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--baseline", type=Path, help="a checkout of the build to compare with")
    parser.add_argument("--requests", type=int, default=2560)
    parser.add_argument("--warmup", type=int, default=640)
    parser.add_argument("--cpu", action="store_true", help="CPU time without valgrind, not instructions")
    args = parser.parse_args(argv)
    unit = "us of CPU" if args.cpu else "k instructions"
    costs = {}
    for variant in variants(args.baseline):
        costs[variant.name] = _per_request(variant, args.warmup, args.requests, args.cpu)
        print(f"{variant.name:32} {costs[variant.name]:8.1f}{unit} a request", flush=True)
    base = costs.get("baseline")
    if base:
        print("baseline / this: " + ", ".join(f"{name} {base / cost:.2f}" for name, cost in costs.items()))
    return 0


def _per_request(variant: Variant, warmup: int, requests: int, cpu: bool) -> float:
    with redis_url(None) as redis, _api(variant, redis, cpu) as (url, counter):
        asyncio.run(_post_all(url, warmup, variant.key, "warm"))
        before = counter.read(zero=True)
        asyncio.run(_post_all(url, requests, variant.key, "run"))
        spent = counter.read(zero=False) - before
    return spent / requests * (1e6 if cpu else 1e-3)


class Counter:
    """The API process's CPU seconds, or its instructions since the last zeroing (callgrind)."""

    def __init__(self, pid: int, dumps: Path | None) -> None:
        self.pid = pid
        self.dumps = dumps

    def read(self, *, zero: bool) -> float:
        if self.dumps is None:
            return cpu_seconds(self.pid)
        action = "--zero" if zero else "--dump"
        subprocess.run(["callgrind_control", action, str(self.pid)], check=True, capture_output=True)
        if zero:
            return 0.0
        # A dump on request is written as "<file>.<n>"; the one at exit (start-up and all) as
        # "<file>", which is not read.
        return float(sum(_dumped(path) for path in self.dumps.parent.glob(f"{self.dumps.name}.*")))


def _dumped(path: Path) -> int:
    found = TOTALS.search(path.read_bytes())
    return int(found.group(1)) if found else 0


@contextmanager
def _api(variant: Variant, redis: str, cpu: bool) -> Iterator[tuple[str, Counter]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        dumps = None if cpu else Path(tmp) / "callgrind.out"
        valgrind: list[str] = []
        if dumps is not None:  # instructions only (callgrind's default); its own lines to a file
            valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={dumps}"]
            valgrind.append(f"--log-file={tmp}/valgrind.log")
        with child([*valgrind, *api_command(port)], api_env(variant, redis), cwd=variant.tree) as proc:
            wait_healthy(url, timeout=20 if cpu else 300)
            time.sleep(0 if cpu else 2)  # let the start settle
            yield url, Counter(proc.pid, dumps)


async def _post_all(url: str, requests: int, key: bool, label: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    lanes = [_lane(host, int(port), range(i, requests, CONNECTIONS), key, label) for i in range(CONNECTIONS)]
    await asyncio.gather(*lanes)


async def _lane(host: str, port: int, numbers: range, key: bool, label: str) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for n in numbers:
            unique = f"{label}-{os.getpid()}-{time.time_ns()}-{n}"
            body = b'{"prompt":"%s","params":{}}' % unique.encode()
            extra = b"Idempotency-Key: %s\r\n" % unique.encode() if key else b""
            head = b"POST /tasks HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            writer.write(head + b"Content-Length: %d\r\n%s\r\n%s" % (len(body), extra, body))
            await _answer(reader)
    finally:
        writer.close()


async def _answer(reader: asyncio.StreamReader) -> None:
    headers = await reader.readuntil(b"\r\n\r\n")
    status = headers.split(b" ", 2)[1]
    if status != b"202":
        raise SystemExit(f"POST /tasks answered {status.decode()}, not 202: {headers[:300]!r}")
    length = re.search(rb"(?i)content-length: (\d+)", headers)
    await reader.readexactly(int(length.group(1)) if length else 0)


if __name__ == "__main__":
    raise SystemExit(main())
