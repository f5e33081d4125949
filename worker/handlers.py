"""Task handlers: the pluggable seam, and the demo handler that simulates real work."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from taskstore.demo import MAX_DURATION, MAX_STEPS, DemoParams


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
    p = _demo_params(params)
    for step in range(1, p.steps + 1):
        await asyncio.sleep(p.duration / p.steps)
        await ctx.progress(step / p.steps)
    if not p.steps and p.duration:
        await asyncio.sleep(p.duration)
    if p.fail:
        raise DemoFailure(f"failed on purpose (attempt {ctx.attempt})")
    if ctx.attempt <= p.fail_times:
        raise DemoFailure(f"failed on purpose, attempt {ctx.attempt} of fail_times={p.fail_times}")
    words = prompt.split()
    return {"echo": prompt, "upper": prompt.upper(), "words": len(words), "chars": len(prompt)}


def _demo_params(params: dict[str, Any]) -> DemoParams:
    try:
        return DemoParams.model_validate(params)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        limits = f"duration 0-{MAX_DURATION:g} s, steps 0-{MAX_STEPS}"
        raise PermanentError(
            f"duration and steps must be numbers within the demo's limits ({limits}): {problems}"
        ) from e


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
