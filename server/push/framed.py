"""An event framed once for the wire, written by each delivery straight into uvicorn's transport.

A live event goes to thousands of streams in one burst. Through the server's ASGI `send`, every
delivery frames it again (a chunk of the HTTP response; a WebSocket frame by websockets' protocol
object) inside a coroutine of its own. Here the frame is built once per event (`Event.wire`, at
its first direct write) and a delivery is one `transport.write` of it: the bytes uvicorn's send would
write, written when it would write them at once and only then.

    writer(send) ─▶ uvicorn's httptools cycle: an HTTP/1.1 chunk, while the response is started,
                    chunked, not complete, not disconnected and its writes are not paused
                 ─▶ uvicorn's websockets-sansio protocol: a text frame, while the socket is open,
                    has no extension (permessage-deflate compresses each message with the
                    socket's own context), sent no close and its writes are not paused
                 ─▶ any other server or protocol: None, and every send is the ASGI send

A writer answers False whenever those conditions do not hold; the caller then uses the ASGI send,
which waits, fails or ends the stream as it always did. Only the hub's direct deliveries use it
(server/push/subscriber.py): the response start, snapshots, pings and the stream's end still go
through sse-starlette, Starlette and uvicorn.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import Send
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State

Writer = Callable[[bytes], bool]


def sse_chunk(sse: bytes) -> bytes:
    """`sse` as one chunk of a chunked HTTP/1.1 body, as uvicorn's send frames it."""
    return b"%x\r\n%b\r\n" % (len(sse), sse)


def ws_frame(payload: bytes) -> bytes:
    """`payload` as a server's unmasked text frame, framed by websockets (no extension)."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])


def writer(send: Send) -> Writer | None:
    """The writer of framed events for the connection under the server's own `send`."""
    owner = getattr(send, "__self__", None)
    if isinstance(owner, RequestResponseCycle):
        return _chunks(owner)
    if isinstance(owner, WebSocketsSansIOProtocol):
        return _frames(owner)
    return None


def _chunks(cycle: RequestResponseCycle) -> Writer | None:
    if cycle.scope["method"] == "HEAD":
        return None  # uvicorn writes no body at all
    flow, transport = cycle.flow, cycle.transport

    def write(chunk: bytes) -> bool:
        usable = cycle.chunked_encoding and not cycle.response_complete and cycle.response_started
        if not usable or flow.write_paused or cycle.disconnected:
            return False
        transport.write(chunk)
        return True

    return write


def _frames(protocol: WebSocketsSansIOProtocol) -> Writer:
    conn, transport, writable = protocol.conn, protocol.transport, protocol.writable

    def write(frame: bytes) -> bool:
        if conn.state is not State.OPEN or conn.extensions or conn.expect_continuation_frame:
            return False
        if protocol.close_sent or protocol.disconnected or not writable.is_set():
            return False
        transport.write(frame)
        return True

    return write
