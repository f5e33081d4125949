"""A handler for the poison-task test: a prompt containing "poison" kills the whole worker."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from worker.handlers import TaskContext, demo


async def handle(prompt: str, params: dict[str, Any], ctx: TaskContext) -> Any:
    if "poison" in prompt:
        # A moment's delay lets the ordinary tasks started beside it finish before the crash.
        await asyncio.sleep(0.2)
        os._exit(1)
    return await demo(prompt, params, ctx)
