"""Credentials out of uvicorn's log lines.

uvicorn writes each request's path with its query string: in the access log ("GET
/tasks/x?api_key=..."), and in its WebSocket lines on `uvicorn.error`. A filter on those two
loggers rewrites the values of `api_key` and `token` (and a password in any URL) to `***`
before any handler formats the record, so every format (text or JSON) gets the redacted text.
"""

from __future__ import annotations

import logging
import re

from taskstore.config import mask_url

LOGGERS = ("uvicorn.access", "uvicorn.error")
# The names as they may appear in a raw query string, percent-encoded or not.
_QUERY_SECRET = re.compile(r"(?i)((?:^|[?&;])(?:api(?:_|%5f)key|token)=)[^&;\s\"']*")
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"']+", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with query secrets and URL passwords replaced by `***`."""
    text = _QUERY_SECRET.sub(r"\1***", text)
    return _URL.sub(lambda m: mask_url(m.group(0)), text) if "://" in text else text


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install() -> None:
    """Put the filter on uvicorn's loggers, once however often the app is created."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
