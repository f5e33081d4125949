"""Task handlers: the pluggable seam, and the demo handler that simulates real work."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What a handler knows of the task it runs, and how it reports progress."""

    task_id: str
    attempt: int
    report: Callable[[float], Awaitable[None]]

    async def progress(self, fraction: float) -> None:
        """Push a progress event; `fraction` is clamped to 0.0–1.0."""
        await self.report(min(1.0, max(0.0, fraction)))


class Handler(Protocol):
    async def __call__(self, prompt: str, params: dict[str, Any], ctx: TaskContext) -> Any: ...


class PermanentError(Exception):
    """Raise from a handler to fail the task at once: no retry can help (bad input, say)."""


class DemoFailure(Exception):
    """What the demo handler raises when asked to fail."""


async def demo(prompt: str, params: dict[str, Any], ctx: TaskContext) -> Any:
    """Sleep `duration` seconds in `steps` steps reporting progress; fail when asked to."""
    try:
        duration = max(0.0, float(params.get("duration", 0)))
        steps = max(0, int(params.get("steps", 0)))
    except (TypeError, ValueError) as e:
        raise PermanentError(f"duration and steps must be numbers: {e}") from e
    for step in range(1, steps + 1):
        await asyncio.sleep(duration / steps)
        await ctx.progress(step / steps)
    if not steps and duration:
        await asyncio.sleep(duration)
    if params.get("fail"):
        raise DemoFailure(f"failed on purpose (attempt {ctx.attempt})")
    if ctx.attempt <= int(params.get("fail_times", 0)):
        raise DemoFailure(f"failed on purpose, attempt {ctx.attempt} of fail_times={params['fail_times']}")
    words = prompt.split()
    return {"echo": prompt, "upper": prompt.upper(), "words": len(words), "chars": len(prompt)}


def load_handler(path: str) -> Handler:
    """Import a handler from `package.module:function`."""
    module_name, sep, attr = path.partition(":")
    if not sep or not attr:
        raise ValueError(f"HANDLER must look like 'package.module:function', got {path!r}")
    try:
        handler: Handler = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"HANDLER {path!r} cannot be loaded: {e}") from e
    if not asyncio.iscoroutinefunction(handler):
        raise ValueError(f"HANDLER {path!r} must be an async function")
    return handler
