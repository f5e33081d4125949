from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from taskstore import TaskStore, decode_state
from taskstore.codec import encode_request
from taskstore.deadletters import DeadLetter, DeadLetters
from tests.helpers import ROOT
from worker import deadletters
from worker.__main__ import parse
from worker.settings import WorkerSettings


@pytest.fixture
def letters(redis: Redis) -> DeadLetters:
    return DeadLetters(redis)


async def _dead(letters: DeadLetters, task_id: str, prompt: str = "again") -> str:
    request = encode_request(prompt, {"duration": 0}).decode()
    return await letters.add(DeadLetter(task_id, "DemoFailure: failed on purpose", 4, request, 1.7e9))


async def _cli(settings: WorkerSettings, *argv: str) -> int:
    return await deadletters.main(parse(["dead-letters", *argv]), settings)


async def test_list_shows_one_line_per_dead_letter(
    letters: DeadLetters,
    make_worker_settings: Callable[..., WorkerSettings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = await _dead(letters, "task-a")
    await _dead(letters, "task-b")

    code = await _cli(make_worker_settings(), "list")

    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[0].startswith(first) and "task-a" in lines[0] and "attempts=4" in lines[0]
    assert "failed on purpose" in lines[0] and '"prompt":"again"' in lines[0]


async def test_requeue_submits_a_new_task_with_the_same_request_and_removes_the_letter(
    letters: DeadLetters,
    store: TaskStore,
    make_worker_settings: Callable[..., WorkerSettings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _dead(letters, "task-a", prompt="try me again")

    code = await _cli(make_worker_settings(), "requeue", "task-a")

    new_id = capsys.readouterr().out.strip()
    state = decode_state(await store.state(new_id))
    assert code == 0 and new_id != "task-a"
    assert state["status"] == "PENDING" and state["attempts"] == 0
    assert await letters.list() == []


async def test_requeue_by_entry_id_and_of_an_unknown_id(
    letters: DeadLetters,
    make_worker_settings: Callable[..., WorkerSettings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    entry_id = await _dead(letters, "task-a")

    found = await _cli(make_worker_settings(), "requeue", entry_id)
    missing = await _cli(make_worker_settings(), "requeue", "nope")

    assert (found, missing) == (0, 1)
    assert "no dead letter 'nope'" in capsys.readouterr().err


async def test_purge_deletes_every_dead_letter(
    letters: DeadLetters,
    make_worker_settings: Callable[..., WorkerSettings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("a", "b", "c"):
        await _dead(letters, name)

    code = await _cli(make_worker_settings(), "purge")

    assert code == 0 and "purged 3" in capsys.readouterr().out
    assert await letters.list() == []


async def test_the_cli_runs_as_python_m_worker(letters: DeadLetters, redis_server: str) -> None:
    await _dead(letters, "task-cli")

    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "worker", "dead-letters", "list"],
        cwd=ROOT,
        env={"REDIS_URL": redis_server, "KEY_PREFIX": "taskcast", "QUEUE_KEY": "task_stream"},
        capture_output=True,
        timeout=30,
    )

    assert done.returncode == 0, done.stderr
    assert b"task-cli" in done.stdout
