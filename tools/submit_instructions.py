"""The API's cost of a POST /tasks counted in instructions, which machine noise does not move.

    git archive 7c53611 | (mkdir -p /tmp/taskcast-base && tar -x -C /tmp/taskcast-base)
    python tools/submit_instructions.py --baseline /tmp/taskcast-base

Req/s and CPU time per request (tools/submit_bench.py) scatter by tens of percent when other
work shares the machine's two cores. This counts the instructions instead (valgrind's callgrind,
repeatable to a fraction of a percent whatever else runs): each variant's app is called in
process, as uvicorn would call it (ASGI, 64 requests at a time, a distinct prompt each, against
a private redis-server), once with --small and once with --large requests; the difference over
the difference in requests is the cost of one request, start-up and imports cancelled out.
Uvicorn's HTTP parsing and the kernel's socket work are not counted: they are the same for
every variant. Valgrind slows Python about 50 times: the default run takes a few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if not __package__:  # `python tools/submit_instructions.py`: import `tools` from the checkout
    sys.path[0] = str(Path(__file__).resolve().parents[1])

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 64
COLLECTED = re.compile(rb"Collected : (\d+)")


@dataclass(frozen=True)
class Variant:
    name: str
    tree: Path
    coalesce: bool = True
    key: bool = False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--baseline", type=Path, help="a checkout of the build to compare with")
    parser.add_argument("--small", type=int, default=640)
    parser.add_argument("--large", type=int, default=1920)
    parser.add_argument("--drive", type=int, help=argparse.SUPPRESS)  # the child: N requests
    parser.add_argument("--key", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.drive is not None:
        import uvloop  # as the API runs

        uvloop.run(_drive(args.drive, args.key))
        return 0
    # Not at the top: the child must import `server` from its variant's tree, not this one.
    from tools.bench_common import redis_url

    variants = [
        Variant("coalesce on, no key", ROOT),
        Variant("coalesce on, Idempotency-Key", ROOT, key=True),
        Variant("coalesce off, no key", ROOT, coalesce=False),
        Variant("coalesce off, Idempotency-Key", ROOT, coalesce=False, key=True),
    ]
    if args.baseline is not None:
        variants.insert(0, Variant("baseline", args.baseline.resolve()))
    with redis_url(None) as redis:
        costs = {v.name: _per_request(v, redis, args.small, args.large) for v in variants}
    base = costs.get("baseline")
    for name, cost in costs.items():
        ratio = f"  baseline / this: {base / cost:.2f}" if base else ""
        print(f"{name:32} {cost / 1000:7.1f}k instructions a request{ratio}")
    return 0


def _per_request(variant: Variant, redis: str, small: int, large: int) -> float:
    few, many = (_instructions(variant, redis, n) for n in (small, large))
    cost = (many - few) / (large - small)
    print(f"{variant.name:32} {few} / {many} instructions for {small} / {large} requests", flush=True)
    return cost


def _instructions(variant: Variant, redis: str, requests: int) -> int:
    env = {
        **os.environ,
        "TASKCAST_TREE": str(variant.tree),
        "REDIS_URL": redis,
        "LOG_LEVEL": "WARNING",
        "MAX_QUEUE_LENGTH": "0",
        "COALESCE": "true" if variant.coalesce else "false",
    }
    script = [sys.executable, str(ROOT / "tools" / "submit_instructions.py"), "--drive", str(requests)]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *script]
        done = subprocess.run([*command, *(["--key"] if variant.key else [])], env=env, capture_output=True)
    found = COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{variant.name}: the run under valgrind failed:\n{done.stderr.decode()[-2000:]}")
    return int(found.group(1))


async def _drive(requests: int, key: bool) -> None:
    """`requests` POST /tasks through the ASGI app, CONCURRENCY at a time, after a warm-up."""
    sys.path.insert(0, os.environ["TASKCAST_TREE"])
    import server.main  # this variant's

    if not Path(server.main.__file__).is_relative_to(os.environ["TASKCAST_TREE"]):
        raise SystemExit(f"imported {server.main.__file__}, not the variant's tree")
    create_app = server.main.create_app

    app = create_app()
    startup: asyncio.Queue[Any] = asyncio.Queue()
    lifespan = asyncio.create_task(app({"type": "lifespan", "state": {}}, _lifespan_receive(), startup.put))
    if (await startup.get())["type"] != "lifespan.startup.complete":
        raise SystemExit("the app did not start")
    await _requests(app, CONCURRENCY * 5, key, "warm")
    await _requests(app, requests, key, "run")
    lifespan.cancel()


def _lifespan_receive() -> Any:
    sent = False

    async def receive() -> dict[str, str]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "lifespan.startup"}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


async def _requests(app: Any, requests: int, key: bool, label: str) -> None:
    async def one_lane(lane: int) -> None:
        for i in range(lane, requests, CONCURRENCY):
            await _post(app, f"{label}-{os.getpid()}-{i}", key)

    await asyncio.gather(*(one_lane(lane) for lane in range(CONCURRENCY)))


async def _post(app: Any, unique: str, key: bool) -> None:
    body = b'{"prompt":"%s","params":{}}' % unique.encode()
    headers = [(b"host", b"bench"), (b"content-type", b"application/json")]
    headers.append((b"content-length", str(len(body)).encode()))
    if key:
        headers.append((b"idempotency-key", unique.encode()))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/tasks", "raw_path": b"/tasks", "root_path": "", "query_string": b"",
        "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    if statuses != [202]:
        raise SystemExit(f"POST /tasks answered {statuses}, not 202")


if __name__ == "__main__":
    raise SystemExit(main())
