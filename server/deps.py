"""Dependency aliases for the routes: what the lifespan built, taken from `app.state`.

They are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread pool,
a thread hop per request for what is a dictionary lookup.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from server.push.hub import Hub
from server.settings import Settings
from taskstore import TaskQueue, TaskStore


async def get_store(request: Request) -> TaskStore:
    store: TaskStore = request.app.state.store
    return store


async def get_queue(request: Request) -> TaskQueue:
    queue: TaskQueue = request.app.state.queue
    return queue


async def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


StoreDep = Annotated[TaskStore, Depends(get_store)]
QueueDep = Annotated[TaskQueue, Depends(get_queue)]
HubDep = Annotated[Hub, Depends(get_hub)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
