"""Dependency aliases for the routes: what the lifespan built, taken from `app.state`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from server.hub import Hub
from server.settings import Settings
from taskstore import TaskQueue, TaskStore


def get_store(request: Request) -> TaskStore:
    store: TaskStore = request.app.state.store
    return store


def get_queue(request: Request) -> TaskQueue:
    queue: TaskQueue = request.app.state.queue
    return queue


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


StoreDep = Annotated[TaskStore, Depends(get_store)]
QueueDep = Annotated[TaskQueue, Depends(get_queue)]
HubDep = Annotated[Hub, Depends(get_hub)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
