"""`taskcast-worker` (or `python -m worker`): run one worker process until SIGTERM or SIGINT.

`taskcast-worker dead-letters list|requeue ID|purge` looks after the dead-letter stream instead.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from taskstore import logs
from worker import deadletters, metrics
from worker.runner import run
from worker.settings import WorkerSettings


async def main(settings: WorkerSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logging.getLogger(__name__).info(
        "worker %s on %s, concurrency %d",
        settings.consumer_name,
        settings.redis_url_for_logs,
        settings.max_concurrency,
    )
    await run(settings, stop)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="taskcast-worker", description="Run a taskcast worker (no command) or manage its queue."
    )
    commands = parser.add_subparsers(dest="command")
    deadletters.add_parser(commands)
    return parser.parse_args(argv)


def cli(argv: list[str]) -> int:
    args = parse(argv)
    settings = WorkerSettings()
    if args.command == "dead-letters":
        return asyncio.run(deadletters.main(args, settings))
    logs.configure(settings.log_level, settings.log_format)
    metrics.serve(settings.metrics_port)
    asyncio.run(main(settings))
    return 0


def entry() -> int:
    """The `taskcast-worker` console script."""
    return cli(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(entry())
