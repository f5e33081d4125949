"""The /ws frame protocol: one client frame in, one control frame out, and resuming a watch.

    {"op": "subscribe", "task_id", "last_seq"?, "token"?} ─▶ {"op": "subscribed", "task_id"}
    {"op": "unsubscribe", "task_id"}                      ─▶ {"op": "unsubscribed", "task_id"}
    anything else                                         ─▶ {"op": "error", "error", ...}
Client values echoed in an error are cut to ECHO_LIMIT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from server.push.hub import Hub
from server.push.subscriber import Event, Subscriber, parse_seq
from server.settings import Settings
from taskstore import TaskNotFound
from taskstore.errors import ECHO_LIMIT, clip

# Why a subscribe frame may not watch a task (task_id, the frame's "token"); None when it may.
Access = Callable[[str, object], str | None]


async def apply_frame(
    text: str | None, sub: Subscriber, settings: Settings, hub: Hub, access: Access
) -> dict[str, Any] | None:
    """Carry out one client frame; the control frame to answer with."""
    if text is None:
        return {"op": "error", "error": "binary frames are not supported; send JSON text frames"}
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        return {"op": "error", "error": f"frame is not JSON: {e}"}
    if not isinstance(frame, dict):
        return {"op": "error", "error": "frame must be a JSON object"}
    op, task_id = frame.get("op"), frame.get("task_id")
    if op not in ("subscribe", "unsubscribe"):
        return {"op": "error", "error": f"unknown op {_echo(op)!r}; use 'subscribe' or 'unsubscribe'"}
    if not isinstance(task_id, str) or not task_id:
        return {"op": "error", "error": "task_id must be a non-empty string", "task_id": _echo(task_id)}
    if op == "unsubscribe":
        await hub.unwatch(sub, task_id)
        return {"op": "unsubscribed", "task_id": clip(task_id)}
    refused = access(task_id, frame.get("token"))
    if refused is not None:  # before any subscription is made
        return {"op": "error", "error": refused, "task_id": clip(task_id), "code": 401}
    return await _subscribe(sub, task_id, seq_of(frame.get("last_seq")), settings, hub)


async def _subscribe(
    sub: Subscriber, task_id: str, last_seq: int, settings: Settings, hub: Hub
) -> dict[str, Any]:
    if task_id not in sub.seen and len(sub.seen) >= settings.max_subscriptions_per_socket:
        limit = settings.max_subscriptions_per_socket
        return {
            "op": "error",
            "error": f"subscription limit of {limit} per socket reached",
            "task_id": clip(task_id),
        }
    try:
        snapshot = await resume_watch(hub, sub, task_id, last_seq)
    except TaskNotFound as e:
        return {"op": "error", "error": str(e), "task_id": clip(task_id), "code": 404}
    if snapshot.terminal and last_seq == snapshot.seq:
        await hub.unwatch(sub, task_id)  # the client saw the end: nothing will follow
    return {"op": "subscribed", "task_id": task_id}


async def resume_watch(hub: Hub, sub: Subscriber, task_id: str, last_seq: int) -> Event:
    """`hub.watch`; a last_seq the task never had resyncs from the snapshot, as SSE does.

    Without that, a client ahead of the task (Redis lost its last writes) got nothing, not
    even the terminal state, until the task's seq passed the client's.
    """
    snapshot = await hub.watch(sub, task_id, after_seq=last_seq)
    if last_seq > snapshot.seq:
        sub.seen[task_id] = 0
        sub.offer(snapshot)
    return snapshot


def _echo(value: object) -> object:
    """A client's value as an error frame echoes it: strings cut, other long values as a cut repr."""
    if isinstance(value, str):
        return clip(value)
    try:
        text = repr(value)
    except RecursionError:  # a frame nested deeper than repr goes
        return "(not shown)"
    return value if len(text) <= ECHO_LIMIT else clip(text)


def seq_of(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return max(0, value)
    if isinstance(value, str):
        return parse_seq(value) or 0
    return 0
