"""Lean subscribers for the push benchmarks: raw sockets as asyncio protocols, no client library.

One Python process has to read thousands of streams while the API is measured, so each event
costs the client a `data_received` call, a split and one `orjson.loads`, nothing more:

    SseSubscriber   GET /tasks/{id}/events, HTTP/1.1 head, then `data: {...}` lines (chunked)
    WsSubscriber    GET /tasks/{id}/ws with the Upgrade head, then unmasked server frames

Each reports `(received_at, event, first)` to `on_event` and resolves `done` after the terminal event
(or with an error when the server answers otherwise). Then, as a browser does, it waits for the
server to end the stream: SSE's last chunk (the client then closes the socket; a browser would
keep it for another request), or the WebSocket close frame (answered; the server closes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

import orjson

TERMINAL = frozenset({"DONE", "FAILED", "CANCELLED"})
WS_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
# A masked close frame (mask key 0, code 1000): the polite answer to the server's close.
WS_CLOSE_REPLY = bytes([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8])

OnEvent = Callable[[float, dict[str, Any], bool], None]  # received at, event, first of stream?


class LeanSubscriber(asyncio.Protocol):
    def __init__(self, request: bytes, on_event: OnEvent, expect: bytes) -> None:
        self.request = request
        self.on_event = on_event
        self.expect = expect  # the status code the head must carry
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()  # socket gone
        self.transport: asyncio.Transport | None = None
        self.events = 0
        self._buffer = b""
        self._head = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: check for what is used.
        if not all(hasattr(transport, name) for name in ("write", "close")):
            raise RuntimeError(f"expected a stream transport, got {transport!r}")
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        if self._head:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self._buffer = buffer
                return
            status = buffer[9:12]
            if status != self.expect:
                self._finish(RuntimeError(f"answered {status.decode()}: {buffer[:200]!r}"))
                return
            self._head = False
            buffer = buffer[end + 4 :]
        self._buffer = self._body(buffer)

    def _body(self, buffer: bytes) -> bytes:
        raise NotImplementedError

    def _event(self, data: bytes) -> None:
        event = orjson.loads(data)
        self.events += 1
        self.on_event(time.time(), event, self.events == 1)
        if event["status"] in TERMINAL and not self.done.done():
            self.done.set_result(None)

    def _finish(self, error: Exception) -> None:
        if self.done.done():
            return
        self.done.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(ConnectionError(f"connection lost before the terminal event ({exc})"))
        self.closed.set_result(None)


class SseSubscriber(LeanSubscriber):
    def __init__(self, task_id: str, on_event: OnEvent) -> None:
        request = f"GET /tasks/{task_id}/events HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
        super().__init__(request, on_event, b"200")

    def _body(self, buffer: bytes) -> bytes:
        *lines, rest = buffer.split(b"\n")
        for line in lines:
            if line.startswith(b"data: "):
                self._event(line[6:])
            elif line == b"0\r" and self.done.done() and self.transport is not None:
                self.transport.close()  # the last chunk of the response: the stream is over
        return rest


class WsSubscriber(LeanSubscriber):
    def __init__(self, task_id: str, on_event: OnEvent) -> None:
        head = f"GET /tasks/{task_id}/ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
        request = head.encode() + (
            b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % WS_KEY
        )
        super().__init__(request, on_event, b"101")

    def _body(self, buffer: bytes) -> bytes:
        while len(buffer) >= 2:
            opcode, size, start = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if size == 126:
                size, start = int.from_bytes(buffer[2:4]), 4
            elif size == 127:
                size, start = int.from_bytes(buffer[2:10]), 10
            if len(buffer) < start + size:
                break
            payload, buffer = buffer[start : start + size], buffer[start + size :]
            if opcode == 1:
                self._event(payload)
            elif opcode == 8 and self.transport is not None:
                self.transport.write(WS_CLOSE_REPLY)
        return buffer


async def open_subscriber(host: str, port: int, task_id: str, sse: bool, on_event: OnEvent) -> LeanSubscriber:
    """Connect one lean subscriber; its `done` resolves after the terminal event."""
    loop = asyncio.get_running_loop()
    factory: Callable[[str, OnEvent], LeanSubscriber] = SseSubscriber if sse else WsSubscriber
    _, protocol = await loop.create_connection(lambda: factory(task_id, on_event), host, port)
    return protocol
