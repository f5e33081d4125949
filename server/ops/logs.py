"""Logging of the API process: the shared setup (taskstore/logs.py) plus uvicorn's own loggers.

With LOG_FORMAT=json, uvicorn's startup, error and access lines become JSON lines too.
Calling `configure` again replaces what the previous call installed.
"""

from __future__ import annotations

import logging

from taskstore import logs
from taskstore.logs import LogFormat

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def configure(level: str, fmt: LogFormat) -> None:
    """Root handler on stderr at `level` in format `fmt`; uvicorn's handlers follow `fmt`."""
    formatter = logs.configure(level, fmt)
    if fmt == "json":
        for name in UVICORN_LOGGERS:
            for uvicorn_handler in logging.getLogger(name).handlers:
                uvicorn_handler.setFormatter(formatter)
