"""Handlers of the kind tests: each reports the kind and the process that ran it."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from worker.handlers import TaskContext, demo
from worker.kinds import Registry


async def summary(prompt: str, params: dict[str, Any], ctx: TaskContext) -> Any:
    await asyncio.sleep(float(params.get("duration", 0)))
    return {"kind": "summary", "pid": os.getpid()}


async def render(prompt: str, params: dict[str, Any], ctx: TaskContext) -> Any:
    await asyncio.sleep(float(params.get("duration", 0)))
    return {"kind": "render", "pid": os.getpid()}


registry = Registry()


@registry.kind("quick", timeout=0.3, retries=0, concurrency=1)
async def quick(prompt: str, params: dict[str, Any], ctx: TaskContext) -> Any:
    return await demo(prompt, params, ctx)


@registry.kind("patient", timeout=5, retries=2, concurrency=3, retry_on_timeout=True)
async def patient(prompt: str, params: dict[str, Any], ctx: TaskContext) -> Any:
    return await demo(prompt, params, ctx)


not_a_registry = {"quick": quick}
