"""HANDLERS and the Registry: which kinds a worker serves, and each kind's own limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from taskstore import TaskStore
from tests.worker.waits import final
from worker.kinds import Registry, load_kinds
from worker.runner import run
from worker.settings import WorkerSettings

HANDLERS = "tests.worker.kind_handlers"


@pytest.fixture
async def run_worker(
    make_worker_settings: Callable[..., WorkerSettings],
) -> AsyncIterator[Callable[..., None]]:
    """Factory: `worker.runner.run` (every kind of HANDLERS) on the test's loop; stopped after."""
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    def start(**overrides: Any) -> None:
        stop = asyncio.Event()
        running.append((stop, asyncio.create_task(run(make_worker_settings(**overrides), stop))))

    yield start
    for stop, task in running:
        stop.set()
        await asyncio.wait_for(task, timeout=15)


def test_without_handlers_the_worker_serves_the_default_kind_with_handler(
    make_worker_settings: Callable[..., WorkerSettings],
) -> None:
    kinds = load_kinds(make_worker_settings(handler=f"{HANDLERS}:summary"))

    assert [(k.name, k.handler.__name__) for k in kinds] == [("default", "summary")]


def test_handlers_pairs_name_each_kind(make_worker_settings: Callable[..., WorkerSettings]) -> None:
    settings = make_worker_settings(handlers=f"summary={HANDLERS}:summary, render={HANDLERS}:render")

    kinds = load_kinds(settings)

    assert [(k.name, k.handler.__name__) for k in kinds] == [("summary", "summary"), ("render", "render")]
    assert [k.settings(settings).task_timeout for k in kinds] == [settings.task_timeout] * 2


def test_handler_set_beside_handlers_still_serves_the_default_kind(
    make_worker_settings: Callable[..., WorkerSettings],
) -> None:
    settings = make_worker_settings(handler=f"{HANDLERS}:render", handlers=f"summary={HANDLERS}:summary")

    assert [k.name for k in load_kinds(settings)] == ["default", "summary"]


def test_a_registry_gives_each_kind_its_limits(make_worker_settings: Callable[..., WorkerSettings]) -> None:
    settings = make_worker_settings(handlers=f"{HANDLERS}:registry")

    limits = {
        k.name: (s.task_timeout, s.max_retries, s.max_concurrency, s.retry_on_timeout)
        for k in load_kinds(settings)
        for s in [k.settings(settings)]
    }

    assert limits == {"quick": (0.3, 0, 1, False), "patient": (5, 2, 3, True)}


@pytest.mark.parametrize(
    ("handlers", "message"),
    [
        (f"Bad=  {HANDLERS}:summary", "must look like 'kind=package.module:function'"),
        (f"a={HANDLERS}:summary,a={HANDLERS}:render", "names kind 'a' twice"),
        (f"{HANDLERS}:not_a_registry", "must name a worker.kinds.Registry"),
        ("no.such.module:registry", "cannot be loaded"),
        (f"x={HANDLERS}:missing", "cannot be loaded"),
    ],
)
def test_bad_handlers_are_refused_naming_the_setting(
    make_worker_settings: Callable[..., WorkerSettings], handlers: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_kinds(make_worker_settings(handlers=handlers))


def test_a_registry_refuses_bad_declarations() -> None:
    registry = Registry()

    with pytest.raises(ValueError, match="timeout must be > 0"):
        registry.kind("a", timeout=0)
    with pytest.raises(ValueError, match="bad kind name"):
        registry.kind("A:b")
    with pytest.raises(ValueError, match="async function"):
        registry.kind("b")(lambda: None)


async def test_each_kind_of_a_registry_runs_under_its_own_timeout_and_retries(
    store: TaskStore, run_worker: Callable[..., None]
) -> None:
    slow_quick = await store.submit("slow", {"duration": 1}, kind="quick")
    slow_patient = await store.submit("slow", {"duration": 1}, kind="patient")
    flaky_quick = await store.submit("flaky", {"fail_times": 1}, kind="quick")
    flaky_patient = await store.submit("flaky", {"fail_times": 2}, kind="patient")
    run_worker(handlers=f"{HANDLERS}:registry", retry_backoff=0.01, retry_backoff_max=0.05)

    states = {
        name: await final(store, sub.task_id)
        for name, sub in [
            ("slow_quick", slow_quick),
            ("slow_patient", slow_patient),
            ("flaky_quick", flaky_quick),
            ("flaky_patient", flaky_patient),
        ]
    }

    assert states["slow_quick"]["status"] == "FAILED"
    assert states["slow_quick"]["error"] == "timed out after 0.3 s"
    assert states["slow_patient"]["status"] == "DONE"
    assert (states["flaky_quick"]["status"], states["flaky_quick"]["attempts"]) == ("FAILED", 1)
    assert (states["flaky_patient"]["status"], states["flaky_patient"]["attempts"]) == ("DONE", 3)
    assert {s["kind"] for s in (states["slow_quick"], states["flaky_quick"])} == {"quick"}
