"""`python -m worker`: run one worker process until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

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
        settings.redis_url,
        settings.max_concurrency,
    )
    await run(settings, stop)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(main(WorkerSettings()))
