"""A handler that does nothing, so a benchmark measures the worker itself.

HANDLER=tools.noop_handler:noop python -m worker      (from the repository root)
"""

from __future__ import annotations

from typing import Any

from worker.handlers import TaskContext


async def noop(prompt: str, params: dict[str, Any], ctx: TaskContext) -> Any:
    """Return at once with a constant result."""
    return None
