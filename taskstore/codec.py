"""orjson encoding of requests, results and events: the only place a payload is shaped.

The event JSON itself is assembled by `state.lua` from hash fields this module encodes, so a
GET and a pushed event are byte-for-byte the same encoding.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from taskstore.kinds import DEFAULT_KIND
from taskstore.model import TaskStatus


def encode_request(prompt: str, params: dict[str, Any], kind: str = DEFAULT_KIND) -> bytes:
    """Canonical JSON of a request (kind, prompt, params): keys sorted, so equal requests encode
    equally, and the same prompt and params of two kinds do not."""
    request = {"kind": kind, "prompt": prompt, "params": params}
    return orjson.dumps(request, option=orjson.OPT_SORT_KEYS)


def signature(canonical_request: bytes) -> str:
    """The cache key part of a request: sha256 of its canonical JSON."""
    return hashlib.sha256(canonical_request).hexdigest()


def fingerprint(signature: str, delay: float) -> str:
    """What a repeat of an Idempotency-Key must match: the request's signature and its delay."""
    return f"{signature}/{delay!r}"


def decode_request(raw: bytes | str) -> tuple[str, dict[str, Any]]:
    """The prompt and params of a stored request; ValueError when it is not one."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"stored request is not JSON: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("prompt"), str):
        raise ValueError(f"stored request has no prompt: {str(raw)[:80]!r}")
    params = data.get("params")
    return data["prompt"], params if isinstance(params, dict) else {}


def decode_kind(raw: bytes | str) -> str:
    """The kind of a stored request; the default kind for one stored before kinds, or garbled."""
    try:
        kind = orjson.loads(raw).get("kind")
    except (orjson.JSONDecodeError, AttributeError):
        return DEFAULT_KIND
    return kind if isinstance(kind, str) and kind else DEFAULT_KIND


def encode_result(result: Any) -> str:
    """A handler's return value as stored JSON text; non-JSON values become their str()."""
    return orjson.dumps(result, default=str).decode()


def encode_number(value: float | int) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def decode_state(raw: bytes | str) -> dict[str, Any]:
    """A state JSON (GET body or event) as a dict."""
    data: dict[str, Any] = orjson.loads(raw)
    return data


def state_seq(state: dict[str, Any]) -> int:
    return int(state["seq"])


def is_terminal(state: dict[str, Any]) -> bool:
    return state["status"] in (TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED)
