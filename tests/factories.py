"""Factories for test data, driven through the real API or taskstore."""

from __future__ import annotations

from typing import Any

import httpx


async def submit(client: httpx.AsyncClient, prompt: str = "hello world", **params: Any) -> str:
    """POST a task and return its id; fails the test on anything but 202."""
    response = await client.post("/tasks", json={"prompt": prompt, "params": params})
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id
