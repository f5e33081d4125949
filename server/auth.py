"""Access control at the edge, as ASGI middleware, before any route or subscription runs.

API_KEY unset ─▶ everything passes
open path (health, docs, the page, static) ─▶ passes
HTTP:      Authorization: Bearer <key> or ?api_key=<key>  ─▶ passes | 401
WebSocket: same two ways; a foreign Origin ─▶ 4403; a bad key ─▶ 4401
           (accepted, then closed: a close before accept reaches a browser as a bare
           failure with no code, and the page could not tell a bad key from an outage)
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs, urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset(
    {"/", "/healthz", "/readyz", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"}
)
OPEN_PREFIXES = ("/static/",)
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403


class AccessControl:
    def __init__(self, app: ASGIApp, *, api_key: str | None, allowed_origins: frozenset[str]) -> None:
        self.app = app
        self.api_key = api_key.encode() if api_key else None
        self.allowed_origins = allowed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            problem = self._origin_problem(scope) or self._key_problem(scope)
            if problem is not None:
                await _refuse_websocket(receive, send, *problem)
                return
        elif scope["type"] == "http" and self._key_problem(scope) is not None:
            await _refuse_http(send)
            return
        await self.app(scope, receive, send)

    def _key_problem(self, scope: Scope) -> tuple[int, str] | None:
        if self.api_key is None or _is_open(scope["path"]):
            return None
        given = _bearer(scope) or _query_key(scope)
        if given is not None and hmac.compare_digest(given, self.api_key):
            return None
        return CLOSE_UNAUTHORIZED, "missing or wrong API key"

    def _origin_problem(self, scope: Scope) -> tuple[int, str] | None:
        """Browsers always send Origin on a WebSocket; other clients usually send none."""
        raw = _header(scope, b"origin")
        if raw is None:
            return None
        origin = raw.decode("latin-1")
        if origin in self.allowed_origins or urlsplit(origin).netloc.encode() == _header(scope, b"host"):
            return None
        return CLOSE_FORBIDDEN_ORIGIN, "origin not allowed"


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


def _query_key(scope: Scope) -> bytes | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("api_key")
    return values[0].encode() if values else None


async def _refuse_http(send: Send) -> None:
    body = b'{"detail":"missing or wrong API key: send Authorization: Bearer <key>"}'
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
    await send({"type": "websocket.close", "code": code, "reason": reason})
