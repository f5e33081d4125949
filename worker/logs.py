"""Logging of the worker process: LOG_LEVEL, and LOG_FORMAT=text (default) or json for log shippers.

json: one object per line, {"time", "level", "logger", "message", ...extra fields}; the same
shape as the API's (server/logs.py), which the worker does not import. The worker's lines about
a task read "task %s ..." with the id as first argument; that id becomes the `task_id` field.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

_STANDARD = {*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        task_id = _task_id(record)
        if task_id is not None:
            entry["task_id"] = task_id
        entry.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def _task_id(record: logging.LogRecord) -> object | None:
    args = record.args
    if isinstance(record.msg, str) and record.msg.startswith("task %s") and isinstance(args, tuple) and args:
        return args[0]
    return None


def configure(level: str, fmt: str) -> None:
    """One handler on stderr at `level`, as JSON lines when `fmt` is "json", else as text."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
