"""Logging of both processes: LOG_LEVEL, and LOG_FORMAT=text (default) or json for log shippers.

json: one object per line, {"time", "level", "logger", "message", ...extra fields}. A field such
as `task_id` is passed by the caller as structured data (`log.info(..., extra={"task_id": id})`),
never parsed back out of the message. The API and the worker share this one formatter; the API
also hands it to uvicorn's loggers (server/ops/logs.py).
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

from pydantic import BaseModel, Field
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
HANDLER_NAME = "taskcast"
# uvicorn adds an ANSI-coloured copy of its message to each record: not a field worth shipping.
_SKIPPED = [*RESERVED_ATTRS, "color_message"]


class LogConfig(BaseModel):
    """The logging settings of both processes (each Settings class inherits them)."""

    log_level: str = Field("INFO", pattern=r"(?i)^(debug|info|warning|error|critical)$")
    log_format: LogFormat = "text"


def json_formatter() -> logging.Formatter:
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, extra fields."""
    return OrjsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        reserved_attrs=_SKIPPED,
    )


def formatter(fmt: LogFormat) -> logging.Formatter:
    return json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


class StderrHandler(logging.Handler):
    """Writes to whatever `sys.stderr` is at the time (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


def configure(level: str, fmt: LogFormat) -> logging.Formatter:
    """Root handler on stderr at `level` in format `fmt`, replacing the one a previous call added."""
    chosen = formatter(fmt)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    handler = StderrHandler()
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(chosen)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return chosen
