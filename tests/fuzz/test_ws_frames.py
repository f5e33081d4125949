"""Property-based fuzzing of the WebSockets with arbitrary client input, against a real uvicorn.

- `/ws`: whatever frames a client sends (text or binary), each gets one control frame back (error,
  subscribed or unsubscribed), the socket stays open, and a valid subscribe still gets the state;
- `/tasks/{id}/ws?last_seq=` of any text, for an ended task: the end (or nothing, if the client
  saw it) and a normal close, never a crashed handler.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect, WebSocketNetworkError, aconnect_ws
from hypothesis import given, note, settings
from hypothesis import strategies as st

from tests.conftest import LiveServer
from tests.factories import submit
from tests.fuzz.strategies import FUZZ, json_values, seq_texts

CONTROL_OPS = {"error", "subscribed", "unsubscribed"}
ANSWER_TIMEOUT = 5.0
MAX_FRAME = 4 * 1024 * 1024  # the client's limit: error frames echo (huge) task ids


@dataclass(frozen=True)
class Placeholder:
    """A string filled in at send time: a real task's id, or a huge one (with a short repr)."""

    char: str = ""
    size: int = 0

    def text(self, task_id: str) -> str:
        return self.char * self.size if self.char else task_id


REAL_TASK = Placeholder()

task_ids = (
    st.just(REAL_TASK)
    | st.text(max_size=40)
    | st.builds(Placeholder, st.sampled_from(["x", "é", "0"]), st.integers(10_000, 200_000))
    | json_values
)
seqs = json_values | st.integers() | seq_texts
ops = st.sampled_from(["subscribe", "unsubscribe", "Subscribe", "error", ""]) | json_values
subscribes = st.fixed_dictionaries(
    {"op": st.sampled_from(["subscribe", "unsubscribe"]), "task_id": task_ids}, optional={"last_seq": seqs}
)
any_ops = st.fixed_dictionaries(
    {"op": ops}, optional={"task_id": task_ids, "last_seq": seqs, "extra": json_values}
)
# Any text a WebSocket text frame can carry: Unicode without lone surrogates.
raw_texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=100).map(lambda t: ("raw", t))
binaries = st.binary(max_size=64) | subscribes.map(lambda f: json.dumps(f, default=str).encode())
frames = st.one_of(subscribes, any_ops, json_values, raw_texts, binaries)


def _encode(frame: Any, task_id: str) -> str | bytes:
    """A generated frame as sent: bytes (a binary frame), a raw text, or JSON text."""
    if isinstance(frame, bytes):
        return frame
    if isinstance(frame, tuple):
        return str(frame[1])
    return json.dumps(frame, default=lambda placeholder: placeholder.text(task_id))


@dataclass
class Conversation:
    answers: list[dict[str, Any]]
    state: dict[str, Any] | None = None
    failure: str | None = None


async def _next_control(ws: AsyncWebSocketSession) -> dict[str, Any]:
    """The next control frame, skipping task events (which carry no "op")."""
    while True:
        frame = orjson.loads(await ws.receive_text(timeout=ANSWER_TIMEOUT))
        if "op" in frame:
            return dict(frame)


async def _state_of(ws: AsyncWebSocketSession, task_id: str) -> dict[str, Any]:
    while True:
        frame = orjson.loads(await ws.receive_text(timeout=ANSWER_TIMEOUT))
        if "op" not in frame and frame["task_id"] == task_id:
            return dict(frame)


async def _converse(
    server: LiveServer, client: httpx.AsyncClient, messages: list[str | bytes], task_id: str
) -> Conversation:
    """Send each message and read its answer, then the task's state; a failure is returned."""
    talk = Conversation(answers=[])
    try:
        async with aconnect_ws(f"{server.url}/ws", client, max_message_size_bytes=MAX_FRAME) as ws:
            for message in messages:
                if isinstance(message, bytes):
                    await ws.send_bytes(message)
                else:
                    await ws.send_text(message)
                talk.answers.append(await _next_control(ws))
            talk.state = await _state_of(ws, task_id)
    except (WebSocketDisconnect, WebSocketNetworkError, TimeoutError, ExceptionGroup) as e:
        # Reported as a plain failure outside this block: Hypothesis then sees the same error
        # whether the socket was closed or stalled.
        talk.failure = f"socket failed after answers {talk.answers} to {len(messages)} frames: {e!r}"
    return talk


@pytest.fixture
async def fuzzed_task(client: httpx.AsyncClient) -> str:
    """The task that generated frames name (as `REAL_TASK`)."""
    return await submit(client, "ws fuzz")


@pytest.fixture
async def probe_task(client: httpx.AsyncClient) -> str:
    """A task no generated frame names: the socket's first subscribe to it must get its state."""
    return await submit(client, "ws probe")


@settings(FUZZ, max_examples=150)
@given(sent=st.lists(frames, min_size=1, max_size=8))
async def test_any_frames_get_control_answers_and_the_socket_stays_usable(
    sent: list[Any],
    live_server: LiveServer,
    client: httpx.AsyncClient,
    fuzzed_task: str,
    probe_task: str,
    server_errors: list[str],
) -> None:
    errors_before = len(server_errors)
    messages = [_encode(frame, fuzzed_task) for frame in sent]
    note(f"frames sent: {[m[:200] for m in messages]}")
    subscribe = orjson.dumps({"op": "subscribe", "task_id": probe_task}).decode()

    talk = await _converse(live_server, client, [*messages, subscribe], probe_task)

    assert talk.failure is None, talk.failure
    assert {a["op"] for a in talk.answers} <= CONTROL_OPS
    assert talk.answers[-1] == {"op": "subscribed", "task_id": probe_task}
    assert talk.state is not None and talk.state["status"] == "PENDING"
    assert server_errors[errors_before:] == []


@pytest.fixture
async def ended_task(client: httpx.AsyncClient) -> tuple[str, int]:
    task_id = await submit(client, "ws ended")
    seq: int = (await client.delete(f"/tasks/{task_id}")).json()["seq"]
    return task_id, seq


@settings(FUZZ, max_examples=100)
@given(last_seq=seq_texts)
async def test_task_socket_with_any_last_seq_sends_the_end_and_closes_normally(
    last_seq: str,
    live_server: LiveServer,
    client: httpx.AsyncClient,
    ended_task: tuple[str, int],
    server_errors: list[str],
) -> None:
    errors_before = len(server_errors)
    task_id, end_seq = ended_task
    url = httpx.URL(f"{live_server.url}/tasks/{task_id}/ws", params={"last_seq": last_seq})

    frames, closed = [], None
    async with aconnect_ws(str(url), client) as ws:
        try:
            while True:
                frames.append(orjson.loads(await ws.receive_text(timeout=ANSWER_TIMEOUT)))
        except WebSocketDisconnect as e:
            closed = e.code

    assert closed == 1000
    assert [(f["status"], f["seq"]) for f in frames] in ([], [("CANCELLED", end_seq)])
    assert server_errors[errors_before:] == []
