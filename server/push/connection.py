"""The client connection under a stream: the server's own `send`, the socket's buffers, abort.

    uvicorn ─▶ ConnectionScope (outermost) ─▶ scope[CONNECTION] = Connection(send)
              ─▶ the streaming routes' layers (server/push/dispatch.py) ─▶ a stream sends its
                 response start through them, then every event through `Connection.send`

A stream's events need nothing from those layers (CORS only watches the response start), so
they skip their per-message wrappers. The same handle caps the socket's kernel send buffer and
uvicorn's write buffer (what a client that stops reading can cost), and aborts the connection
when the client stops reading: `transport.close()` would wait, forever, to flush a buffer that
the client never reads, and the descriptor would stay open.

uvicorn's ASGI `send` is a bound method of the request cycle (HTTP) or of the connection's
protocol (WebSocket), both holding `.transport`. Under a server without one there is no cap and
no abort: a stream dropped for its send timeout is still let go by the hub, but its socket
stays the server's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Awaitable
from typing import Literal, cast

from starlette.types import ASGIApp, Receive, Scope, Send

from server.push import framed

CONNECTION = "taskcast.connection"


class Connection:
    __slots__ = ("_framed", "_transport", "send")

    def __init__(self, send: Send) -> None:
        self.send = send  # the server's own send, before any middleware wraps it
        self._transport: asyncio.Transport | None | Literal[False] = False  # False: not looked up yet
        self._framed: framed.Writer | None | Literal[False] = False

    def write_framed(self, data: bytes) -> bool:
        """Write an event framed for this connection's protocol if its send would write it at
        once; False (nothing written) otherwise, or under a server with no writer (framed.py)."""
        write = self._framed
        if write is False:
            write = self._framed = framed.writer(self.send)
        return write is not None and write(data)

    @property
    def transport(self) -> asyncio.Transport | None:
        # Looked up once: the watchdog asks every stream's connection whether it is closing.
        if self._transport is False:
            self._transport = _transport(self.send)
        return self._transport

    @property
    def closing(self) -> bool:
        # Asked of every stream on every watchdog sweep: the cached transport read directly.
        transport = self._transport
        if transport is False:
            transport = self.transport
        return transport is not None and transport.is_closing()

    def limit_buffers(self, size: int) -> None:
        """Bound what an unread stream holds to about `size` bytes in the kernel (SO_SNDBUF,
        which Linux doubles for its bookkeeping) and as much again in uvicorn's write buffer."""
        transport = self.transport
        if transport is None or not size:
            return
        transport.set_write_buffer_limits(high=size)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Not every platform or socket family allows it; the cap is a bound, not a need.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)

    def abort(self) -> None:
        """Drop the connection now, unsent data and all: the descriptor and the kernel's buffers.

        A plain close (or abort) leaves the kernel holding the unsent bytes of a socket nobody
        owns any more, for as long as the client keeps its window shut; with SO_LINGER 0 the
        close resets the connection and frees them.
        """
        transport = self.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()


def _transport(send: Send) -> asyncio.Transport | None:
    # uvloop's transports are not asyncio.Transport subclasses: check for what is used.
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    usable = all(hasattr(transport, name) for name in ("abort", "is_closing", "set_write_buffer_limits"))
    return cast(asyncio.Transport, transport) if usable else None


class ConnectionScope:
    """Outermost ASGI layer: puts the connection's handle in every HTTP and WebSocket scope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not `async`: the inner app's coroutine is handed back, so this layer keeps no frame
        # alive for the life of every stream (server/push/dispatch.py).
        if scope["type"] != "lifespan":
            scope[CONNECTION] = Connection(send)
        return self.app(scope, receive, send)


def connection(scope: Scope, send: Send) -> Connection:
    """The connection under `scope`, or one around `send` when ConnectionScope is not installed."""
    found = scope.get(CONNECTION)
    return found if isinstance(found, Connection) else Connection(send)
