"""Two kinds, two worker processes each serving one: every task runs on a worker of its kind, and
a kind without a worker waits, nothing lost, while the other kind goes on."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from taskstore import TaskStore, decode_state
from tests.helpers import both_topologies
from tests.reliability.procs import WorkerProcess
from tests.worker.waits import all_final

HANDLERS = "tests.worker.kind_handlers"

pytestmark = both_topologies


@pytest.fixture
def worker_of(clean_redis: str, request: pytest.FixtureRequest) -> Iterator[Callable[[str], WorkerProcess]]:
    """Factory: a `python -m worker` process serving one kind of tests.worker.kind_handlers."""
    started: list[WorkerProcess] = []

    def start(kind: str) -> WorkerProcess:
        name = f"{request.node.name}-{kind}-{len(started)}"
        worker = WorkerProcess(clean_redis, name, handlers=f"{kind}={HANDLERS}:{kind}", read_block_ms="50")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


async def _submit(store: TaskStore, kind: str, count: int) -> list[str]:
    """`count` new tasks of `kind`, each a request of its own (never answered from the cache)."""
    prompts = [f"{kind} {uuid.uuid4()}" for _ in range(count)]
    return [(await store.submit(prompt, {"duration": 0.05}, kind=kind)).task_id for prompt in prompts]


async def _statuses(store: TaskStore, task_ids: list[str]) -> set[str]:
    return {decode_state(raw)["status"] for raw in await store.states(task_ids) if raw is not None}


@pytest.mark.timeout(90)
async def test_every_task_runs_on_a_worker_of_its_own_kind(
    store: TaskStore, worker_of: Callable[[str], WorkerProcess]
) -> None:
    workers = {"summary": worker_of("summary"), "render": worker_of("render")}
    ids = {kind: await _submit(store, kind, 10) for kind in workers}

    states = {kind: await all_final(store, ids[kind]) for kind in workers}

    for kind, worker in workers.items():
        assert {s["status"] for s in states[kind]} == {"DONE"}
        assert {s["kind"] for s in states[kind]} == {kind}
        assert {(s["result"]["kind"], s["result"]["pid"]) for s in states[kind]} == {(kind, worker.proc.pid)}


@pytest.mark.timeout(90)
async def test_a_kind_without_a_worker_waits_until_one_comes(
    store: TaskStore, worker_of: Callable[[str], WorkerProcess]
) -> None:
    worker_of("summary")
    render = worker_of("render")
    await all_final(store, await _submit(store, "render", 1))
    assert await render.terminate() == 0

    renders = await _submit(store, "render", 5)
    summaries = await _submit(store, "summary", 5)
    summary_states = await all_final(store, summaries)
    waiting = await _statuses(store, renders)
    back = worker_of("render")
    render_states = await all_final(store, renders)

    assert {s["status"] for s in summary_states} == {"DONE"}
    assert waiting == {"PENDING"}
    assert {s["status"] for s in render_states} == {"DONE"}
    assert {s["result"]["pid"] for s in render_states} == {back.proc.pid}
