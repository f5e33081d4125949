"""Access control at the edge, as ASGI middleware, before any route or subscription runs.

API_KEY unset ─▶ everything passes
open path (health, docs, the page, static) ─▶ passes
HTTP:      Authorization: Bearer <key> or ?api_key=<key>  ─▶ passes
           else a watch token (?token= or Bearer) for the task of GET /tasks/{id}[/events] ─▶ passes
           else 401
WebSocket: the same (the token for the task of /tasks/{id}/ws); a foreign Origin ─▶ 4403;
           a bad key or token ─▶ 4401 (accepted, then closed: a close before accept reaches a
           browser as a bare failure with no code, and the page could not tell a bad key from
           an outage)
/ws with a valid watch token instead of the key ─▶ watch-only socket: each subscribe frame
           needs a token for its task ("token" in the frame, else the socket's), see
           `frame_refusal`; a refused frame gets an error frame and subscribes nothing
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from server.access.tokens import TokenRefused, WatchTokens

OPEN_PATHS = frozenset(
    {"/", "/dashboard", "/healthz", "/readyz", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"}
)
OPEN_PREFIXES = ("/static/",)
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
FOREIGN = "origin not allowed"
NO_KEY = "missing or wrong API key: send Authorization: Bearer <key>"
WATCH_ONLY_REFUSAL = "a watch token only watches (a task, its events, its sockets); this needs the API key"
# The scope entry of a watch-only /ws socket: the token it was opened with.
WATCH_ONLY = "taskcast.watch_token"
_WATCH_HTTP = re.compile(r"/tasks/([^/]+)(?:/events)?")
_WATCH_WS = re.compile(r"/tasks/([^/]+)/ws")


class AccessControl:
    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        tokens: WatchTokens | None = None,
        allowed_origins: frozenset[str],
    ) -> None:
        self.app = app
        self.api_key = api_key.encode() if api_key else None
        self.tokens = tokens
        self.allowed_origins = allowed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            problem = self._origin_problem(scope) or self._key_problem(scope)
            if problem is not None:
                code = CLOSE_FORBIDDEN_ORIGIN if problem == FOREIGN else CLOSE_UNAUTHORIZED
                await _refuse_websocket(receive, send, code, problem)
                return
        elif scope["type"] == "http" and (problem := self._key_problem(scope)) is not None:
            await _refuse_http(send, problem)
            return
        await self.app(scope, receive, send)

    def _key_problem(self, scope: Scope) -> str | None:
        if self.api_key is None or _is_open(scope["path"]):
            return None
        bearer = _bearer(scope)
        for given in (bearer, _query(scope, "api_key")):
            if given is not None and hmac.compare_digest(given, self.api_key):
                return None
        token = _query(scope, "token") or bearer
        if token is None or self.tokens is None:
            return NO_KEY
        return _token_problem(scope, self.tokens, token.decode("latin-1"))

    def _origin_problem(self, scope: Scope) -> str | None:
        """Browsers always send Origin on a WebSocket; other clients usually send none."""
        raw = _header(scope, b"origin")
        if raw is None:
            return None
        origin = raw.decode("latin-1")
        if origin in self.allowed_origins or urlsplit(origin).netloc.encode() == _header(scope, b"host"):
            return None
        return FOREIGN


def _token_problem(scope: Scope, tokens: WatchTokens, token: str) -> str | None:
    """Why `token` does not open this request; None when it does (a watch of its task)."""
    path = scope["path"]
    if scope["type"] == "websocket" and path == "/ws":
        scope[WATCH_ONLY] = token
        return _refusal(tokens.subject, token)
    pattern = _WATCH_WS if scope["type"] == "websocket" else _WATCH_HTTP
    watched = pattern.fullmatch(path)
    if watched is None or scope.get("method", "GET") != "GET":
        return WATCH_ONLY_REFUSAL
    return _refusal(tokens.check, token, watched.group(1))


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _bearer(scope: Scope) -> bytes | None:
    value = _header(scope, b"authorization")
    if value is None or not value[:7].lower() == b"bearer ":
        return None
    return value[7:].strip()


def _query(scope: Scope, name: str) -> bytes | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0].encode("latin-1") if values else None


def _refusal(check: Callable[..., object], *args: str) -> str | None:
    try:
        check(*args)
    except TokenRefused as e:
        return str(e)
    return None


def frame_refusal(scope: Scope, tokens: WatchTokens | None, task_id: str, frame_token: object) -> str | None:
    """Why a /ws subscribe frame may not watch `task_id`; None when it may.

    Only a watch-only socket is asked: one opened with the API key (or with none set) watches all.
    """
    socket_token = scope.get(WATCH_ONLY)
    if socket_token is None or tokens is None:
        return None
    token = frame_token if isinstance(frame_token, str) and frame_token else socket_token
    return _refusal(tokens.check, token, task_id)


async def _refuse_http(send: Send, reason: str) -> None:
    body = orjson.dumps({"detail": reason})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b'Bearer realm="taskcast"'),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse_websocket(receive: Receive, send: Send, code: int, reason: str) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    # A close frame's reason holds at most 123 bytes.
    short = reason.encode()[:123].decode(errors="ignore")
    await send({"type": "websocket.close", "code": code, "reason": short})
