"""Submit a task (or pick one by id) and print each of its states as it comes.

    taskcast-watch "a prompt" --duration 2 --steps 4 [--fail] [--transport auto|sse|ws|poll]
    taskcast-watch --task-id ID [--url http://127.0.0.1:8000] [--api-key K | --token T]
    python -m taskcast_client.watch ...            (the same)

Exit status: 0 DONE, 1 FAILED, 2 CANCELLED, 3 anything else (unknown task, no connection,
bad arguments). Which transport carried the states, and any fallback, goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from typing import Any, NoReturn

import httpx

from taskcast_client.client import TaskcastClient, TaskcastClientError

EXIT_CODES = {"DONE": 0, "FAILED": 1, "CANCELLED": 2}
EXIT_ERROR = 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # exit 2 means CANCELLED here
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(prog="taskcast-watch", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("prompt", nargs="?", help="submit a task with this prompt, then watch it")
    parser.add_argument("--task-id", help="watch an existing task instead of submitting one")
    parser.add_argument("--kind", help="the task's kind (one of the server's TASK_KINDS)")
    parser.add_argument("--delay", type=float, help="seconds before the task may start")
    parser.add_argument("--idempotency-key", help="repeats with this key get the same task")
    parser.add_argument("--params", type=_json_object, help="handler params as a JSON object")
    parser.add_argument("--duration", type=float, help="demo handler: seconds of simulated work")
    parser.add_argument("--steps", type=int, help="demo handler: progress events along the way")
    parser.add_argument("--fail", action="store_true", help="demo handler: raise at the end")
    parser.add_argument("--fail-times", type=int, help="demo handler: fail the first N attempts")
    parser.add_argument("--url", default=os.environ.get("TASKCAST_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--transport", choices=["auto", "sse", "ws", "poll"], default="auto")
    parser.add_argument("--api-key", default=os.environ.get("TASKCAST_API_KEY"))
    parser.add_argument(
        "--token", default=os.environ.get("TASKCAST_WATCH_TOKEN"), help="watch token for --task-id"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every reconnect")
    args = parser.parse_args(argv)
    if (args.prompt is None) == (args.task_id is None):
        parser.error("give either a prompt to submit or --task-id, not both")
    return args


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def task_params(args: argparse.Namespace) -> dict[str, Any]:
    params = {"duration": args.duration, "steps": args.steps, "fail_times": args.fail_times}
    chosen: dict[str, Any] = dict(args.params or {})
    chosen.update({k: v for k, v in params.items() if v is not None})
    if args.fail:
        chosen["fail"] = True
    return chosen


def format_state(state: dict[str, Any], now: float | None = None) -> str:
    """One line: time, seq, status, progress, attempts; the result or error once it ended."""
    now = time.time() if now is None else now
    stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
    progress = state.get("progress")
    percent = f"{float(progress) * 100:3.0f}%" if progress is not None else "   -"
    attempts = state.get("attempts", 0)
    line = f"{stamp}  seq {state['seq']:>3}  {state['status']:<9}  {percent}  attempts {attempts}"
    if state["status"] == "DONE":
        line += "  result " + json.dumps(state.get("result"), ensure_ascii=False)
    elif state.get("error") and state["status"] in ("FAILED", "CANCELLED", "PENDING"):
        line += f"  error {state['error']}"
    return line


async def run(args: argparse.Namespace) -> int:
    async with TaskcastClient(args.url, api_key=args.api_key) as client:
        task_id = args.task_id
        if task_id is None:
            submitted = await client.submit(
                args.kind,
                args.prompt,
                task_params(args),
                idempotency_key=args.idempotency_key,
                delay=args.delay,
            )
            task_id = submitted["task_id"]
            cached = " (answered from the cache)" if submitted.get("cached") else ""
            print(f"task {task_id} submitted{cached}", flush=True)
        status, via = "", None
        async for state in client.watch(task_id, transport=args.transport, token=args.token):
            if client.transport != via:
                via = client.transport
                print(f"following task {task_id} via {via}", file=sys.stderr, flush=True)
            print(format_state(state, time.time()), flush=True)
            status = state["status"]
        return EXIT_CODES.get(status, EXIT_ERROR)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="taskcast-watch: %(message)s",
        stream=sys.stderr,
    )
    try:
        return asyncio.run(run(args))
    except (TaskcastClientError, httpx.HTTPError, OSError) as e:
        print(f"taskcast-watch: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
