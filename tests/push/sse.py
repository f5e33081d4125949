"""Reading Server-Sent Events line by line, as a client would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Each event as {"id", "event", "data"} with `data` decoded; comments are skipped."""
    fields: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in fields:
                yield {**fields, "data": orjson.loads(fields["data"])}
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


async def collect(client: httpx.AsyncClient, task_id: str, **headers: str) -> list[dict[str, Any]]:
    """Every event of the task's stream until the server ends it."""
    async with client.stream("GET", f"/tasks/{task_id}/events", headers=headers) as response:
        assert response.status_code == 200, response.status_code
        return [event async for event in sse_events(response)]
