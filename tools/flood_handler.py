"""A handler that reports progress as fast as it can (HANDLER=tools.flood_handler:flood).

params: `seconds` of flooding; then `linger` seconds of quiet, and the end: a result, or with
`fail` a PermanentError, or with `fail_first` an ordinary error on attempt 1 only. The last value
reported travels in the result or the error, so a test can compare it with what was published.
"""

from __future__ import annotations

import asyncio
from typing import Any

from worker.handlers import PermanentError, TaskContext


class FloodFailure(Exception):
    """The ordinary (retried) error of `fail_first`."""


async def flood(prompt: str, params: dict[str, Any], ctx: TaskContext) -> Any:
    loop = asyncio.get_running_loop()
    end, calls, last = loop.time() + float(params.get("seconds", 0)), 0, 0.0
    if ctx.attempt == 1 or not params.get("fail_first"):
        while loop.time() < end:
            calls += 1
            last = calls * 1e-8
            await ctx.progress(last)
    await asyncio.sleep(float(params.get("linger", 0)))
    if params.get("fail"):
        raise PermanentError(f"last={last!r}")
    if params.get("fail_first") and ctx.attempt == 1:
        raise FloodFailure(f"last={last!r}")
    return {"calls": calls, "last": last}
