"""Fixtures of the fuzz tests: what the live server logged as an error while it ran."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

# uvicorn logs a handler's unhandled exception ("Exception in ASGI application") here, and
# its logger does not propagate to the root logger that caplog watches.
WATCHED_LOGGERS = ("uvicorn.error", "")


class _Collect(logging.Handler):
    def __init__(self, records: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture
def server_errors() -> Iterator[list[str]]:
    """Every ERROR (or worse) record logged by the API or uvicorn during the test."""
    records: list[str] = []
    handler = _Collect(records)
    for name in WATCHED_LOGGERS:
        logging.getLogger(name).addHandler(handler)
    yield records
    for name in WATCHED_LOGGERS:
        logging.getLogger(name).removeHandler(handler)
