from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from taskstore import Keys, TaskQueue, TaskStore, decode_state, new_task_id
from taskstore.codec import encode_request, signature
from taskstore.deadletters import DeadLetter, DeadLetters
from tests.helpers import ROOT, both_topologies
from worker import deadletters
from worker.__main__ import parse
from worker.settings import WorkerSettings

pytestmark = both_topologies


@pytest.fixture
def letters(redis: Redis, keys: Keys) -> DeadLetters:
    return DeadLetters(redis, keys)


def _id(letters: DeadLetters, name: str) -> str:
    """A task id as submit makes them (its shard from the name), ending with `name`."""
    return letters.keys.new_task_id(signature(name.encode()), new_task_id()[: -len(name)] + name)


async def _dead(letters: DeadLetters, task_id: str, prompt: str = "again") -> str:
    request = encode_request(prompt, {"duration": 0}).decode()
    letter = DeadLetter(task_id, "DemoFailure: failed on purpose", 4, request, time.time())
    return await letters.add(letter)


async def _cli(settings: WorkerSettings, *argv: str) -> int:
    return await deadletters.main(parse(["dead-letters", *argv]), settings)


async def test_list_shows_one_line_per_dead_letter(
    letters: DeadLetters,
    make_worker_settings: Callable[..., WorkerSettings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    task_a = _id(letters, "aaaa")
    first = await _dead(letters, task_a)
    await _dead(letters, _id(letters, "bbbb"))

    code = await _cli(make_worker_settings(), "list")

    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[0].startswith(first) and task_a in lines[0] and "attempts=4" in lines[0]
    assert "failed on purpose" in lines[0] and '"prompt":"again"' in lines[0]


async def test_requeue_submits_a_new_task_with_the_same_request_and_removes_the_letter(
    letters: DeadLetters,
    store: TaskStore,
    make_worker_settings: Callable[..., WorkerSettings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    task_a = _id(letters, "aaaa")
    await _dead(letters, task_a, prompt="try me again")

    code = await _cli(make_worker_settings(), "requeue", task_a)

    new_id = capsys.readouterr().out.strip()
    state = decode_state(await store.state(new_id))
    assert code == 0 and new_id != task_a
    assert state["status"] == "PENDING" and state["attempts"] == 0
    assert await letters.list() == []


async def test_requeue_by_entry_id_and_of_an_unknown_id(
    letters: DeadLetters,
    make_worker_settings: Callable[..., WorkerSettings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    entry_id = await _dead(letters, _id(letters, "aaaa"))

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
        await _dead(letters, _id(letters, name))

    code = await _cli(make_worker_settings(), "purge")

    assert code == 0 and "purged 3" in capsys.readouterr().out
    assert await letters.list() == []


async def test_the_cli_runs_as_python_m_worker(letters: DeadLetters, clean_redis: str) -> None:
    task_id = _id(letters, "c11")
    await _dead(letters, task_id)

    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "worker", "dead-letters", "list"],
        cwd=ROOT,
        env={"REDIS_URL": clean_redis, "KEY_PREFIX": "taskcast", "QUEUE_KEY": "task_stream"},
        capture_output=True,
        timeout=30,
    )

    assert done.returncode == 0, done.stderr
    assert task_id.encode() in done.stdout


async def test_each_kind_has_its_own_dead_letters_and_the_commands_take_kind(
    redis: Redis,
    keys: Keys,
    store: TaskStore,
    make_worker_settings: Callable[..., WorkerSettings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    render = DeadLetters(redis, keys.of_kind("render"))
    task_id = _id(render, "task-r")
    request = encode_request("draw", {}, "render").decode()
    await render.add(DeadLetter(task_id, "boom", 1, request, time.time()))
    settings = make_worker_settings()

    default_list = await _cli(settings, "list")
    default_out = capsys.readouterr().out
    render_list = await _cli(settings, "list", "--kind", "render")
    render_out = capsys.readouterr().out
    requeued = await _cli(settings, "requeue", task_id, "--kind", "render")
    new_id = capsys.readouterr().out.strip()

    assert (default_list, default_out) == (0, "")
    assert render_list == 0 and task_id in render_out
    assert requeued == 0
    assert decode_state(await store.state(new_id))["kind"] == "render"
    assert await TaskQueue(redis, keys.of_kind("render")).backlog() == 1
    assert await render.list() == []
