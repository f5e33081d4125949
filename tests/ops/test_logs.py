"""Log lines: one per event that matters, with the task id; JSON lines with LOG_FORMAT=json."""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
from redis.asyncio import Redis

from taskstore import TaskStore, decode_state, logs
from tests.factories import submit
from tests.helpers import wait_for
from tests.ops.stack import ApiProcess
from tests.reliability.procs import WorkerProcess

StartApis = Callable[..., Awaitable[list[ApiProcess]]]


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of `text` as a JSON object; fails on a line that is not one."""
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    return logging.getLogger("taskcast.test").makeRecord(
        "taskcast.test", logging.INFO, __file__, 1, msg, args, None, extra=extra
    )


def test_json_line_has_time_level_logger_message_and_extra_fields() -> None:
    line = logs.json_formatter().format(record("stream of %s opened", "t1", task_id="t1", transport="sse"))

    entry = orjson.loads(line)
    assert entry.keys() == {"time", "level", "logger", "message", "task_id", "transport"}
    assert entry["message"] == "stream of t1 opened"
    assert (entry["level"], entry["logger"], entry["task_id"]) == ("INFO", "taskcast.test", "t1")
    assert entry["time"].endswith("+00:00")


def test_task_id_is_a_field_only_when_passed_as_extra() -> None:
    formatter = logs.json_formatter()

    from_args = orjson.loads(formatter.format(record("task %s done (attempt %d)", "t9", 1)))
    from_extra = orjson.loads(formatter.format(record("task %s done (attempt %d)", "t9", 1, task_id="t9")))

    assert "task_id" not in from_args
    assert from_extra["task_id"] == "t9"
    assert from_extra["message"] == "task t9 done (attempt 1)"


def test_json_line_carries_the_traceback_and_drops_uvicorns_coloured_copy() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.getLogger("uvicorn.error").makeRecord(
            "uvicorn.error",
            logging.ERROR,
            __file__,
            1,
            "failed",
            (),
            sys.exc_info(),
            extra={"color_message": "x"},
        )

    entry = orjson.loads(logs.json_formatter().format(failed))

    assert "ValueError: boom" in entry["exc_info"]
    assert "color_message" not in entry


async def test_api_process_writes_json_lines_and_nothing_per_ping(
    start_apis: StartApis, redis: Redis
) -> None:
    [api] = await start_apis(1, log_format="json", sse_ping_seconds="0.05")
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        task_id = await submit(client, "log me")
        async with client.stream("GET", f"/tasks/{task_id}/events") as response:
            pings = 0
            async for line in response.aiter_lines():
                pings += line.startswith(":")
                if pings == 5:
                    break
        await wait_for(lambda: _logged(api, "closed"), what="the stream's closing line")
    api.stop()

    entries = json_lines(api.log())
    mine = [e for e in entries if e.get("task_id") == task_id]
    assert len(mine) == 2 and mine[0]["message"] == f"task {task_id} submitted (cached=False)"
    assert mine[0]["cached"] is False
    assert mine[1]["message"].startswith(f"sse stream of task {task_id} closed")
    assert _fields(mine[1]) == {"transport": "sse", "events": 1}
    assert any(e["logger"] == "uvicorn.access" and "POST /tasks" in e["message"] for e in entries)
    assert not any("ping" in e["message"].lower() for e in entries)


async def test_worker_process_writes_json_lines_with_task_ids(redis_server: str, store: TaskStore) -> None:
    worker = WorkerProcess(redis_server, "json-logs", log_format="json")
    try:
        task = await store.submit("work", {})
        await wait_for(lambda: _done(store, task.task_id), what="the task to finish")
    finally:
        worker.stop()

    entries = json_lines(worker.log_text())
    mine = [e["message"] for e in entries if e.get("task_id") == task.task_id]
    assert any(" started" in message for message in mine)
    assert any(" done" in message for message in mine)


async def _logged(api: ApiProcess, word: str) -> bool:
    return word in api.log()


async def _done(store: TaskStore, task_id: str) -> bool:
    return bool(decode_state(await store.state(task_id))["status"] == "DONE")


def _fields(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k in ("transport", "events")}
