"""The kinds a worker serves, from HANDLERS (or HANDLER alone), each with its own limits.

    HANDLERS=summary=app.jobs:summarise,render=app.jobs:render   pairs: the worker's limits apply
    HANDLERS=app.jobs:registry                                   a Registry: limits per kind
    HANDLER=app.jobs:run                                         the default kind (as before)

A registry in the user's code:

    registry = Registry()

    @registry.kind("render", timeout=600, retries=1, concurrency=2, retry_on_timeout=True)
    async def render(prompt: str, params: dict[str, Any], ctx: TaskContext) -> Any: ...

HANDLER keeps meaning the default kind: with HANDLERS also set, the worker serves the default
kind with it too, unless HANDLERS names the default kind itself (then setting both is an error).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from taskstore.kinds import DEFAULT_KIND, is_kind
from worker.handlers import Handler, load_handler
from worker.settings import WorkerSettings

H = TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind a worker serves; a limit left None is the worker's setting."""

    name: str
    handler: Handler
    timeout: float | None = None
    retries: int | None = None
    concurrency: int | None = None
    retry_on_timeout: bool | None = None

    def settings(self, base: WorkerSettings) -> WorkerSettings:
        """The worker's settings with this kind's own limits applied."""
        limits = {
            "task_timeout": self.timeout,
            "max_retries": self.retries,
            "max_concurrency": self.concurrency,
            "retry_on_timeout": self.retry_on_timeout,
        }
        return base.model_copy(update={k: v for k, v in limits.items() if v is not None})


class Registry:
    """Kinds declared in the user's code with `@registry.kind(name, timeout=, retries=, concurrency=)`."""

    def __init__(self) -> None:
        self.kinds: dict[str, Kind] = {}

    def kind(
        self,
        name: str,
        *,
        timeout: float | None = None,
        retries: int | None = None,
        concurrency: int | None = None,
        retry_on_timeout: bool | None = None,
    ) -> Callable[[H], H]:
        """Declare the decorated async function as the handler of kind `name`, with its limits
        (None: the worker's TASK_TIMEOUT, MAX_RETRIES, MAX_CONCURRENCY, RETRY_ON_TIMEOUT)."""
        _check_limits(name, timeout, retries, concurrency)

        def declare(handler: H) -> H:
            if not asyncio.iscoroutinefunction(handler):
                raise ValueError(f"kind {name!r}: the handler must be an async function")
            if name in self.kinds:
                raise ValueError(f"kind {name!r} is declared twice")
            self.kinds[name] = Kind(name, handler, timeout, retries, concurrency, retry_on_timeout)
            return handler

        return declare


def load_kinds(settings: WorkerSettings) -> list[Kind]:
    """The kinds this worker serves; ValueError naming the setting when it cannot be loaded."""
    spec = settings.handlers.strip()
    if not spec:
        return [Kind(DEFAULT_KIND, load_handler(settings.handler))]
    kinds = _pairs(spec) if "=" in spec else _registry(spec)
    if "handler" in settings.model_fields_set:
        if any(k.name == DEFAULT_KIND for k in kinds):
            raise ValueError("HANDLER and HANDLERS both name a handler of the default kind; keep one")
        kinds.insert(0, Kind(DEFAULT_KIND, load_handler(settings.handler)))
    return kinds


def _pairs(spec: str) -> list[Kind]:
    kinds: list[Kind] = []
    for pair in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, path = pair.partition("=")
        name = name.strip()
        if not sep or not is_kind(name):
            raise ValueError(f"HANDLERS entry {pair!r} must look like 'kind=package.module:function'")
        if any(k.name == name for k in kinds):
            raise ValueError(f"HANDLERS names kind {name!r} twice")
        kinds.append(Kind(name, load_handler(path.strip())))
    return kinds


def _registry(path: str) -> list[Kind]:
    module_name, sep, attr = path.partition(":")
    try:
        registry = getattr(importlib.import_module(module_name), attr) if sep else None
    except (ImportError, AttributeError) as e:
        raise ValueError(f"HANDLERS {path!r} cannot be loaded: {e}") from e
    if not isinstance(registry, Registry):
        raise ValueError(f"HANDLERS {path!r} must name a worker.kinds.Registry, or list kind=module:function")
    if not registry.kinds:
        raise ValueError(f"HANDLERS {path!r}: the registry declares no kind")
    return list(registry.kinds.values())


def _check_limits(name: str, timeout: float | None, retries: int | None, concurrency: int | None) -> None:
    if not is_kind(name):
        raise ValueError(f"bad kind name {name!r}: lowercase letters, digits, '_' and '-', at most 64")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"kind {name!r}: timeout must be > 0, got {timeout}")
    if retries is not None and retries < 0:
        raise ValueError(f"kind {name!r}: retries must be >= 0, got {retries}")
    if concurrency is not None and concurrency < 1:
        raise ValueError(f"kind {name!r}: concurrency must be >= 1, got {concurrency}")
