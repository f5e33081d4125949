"""The security schemes in the OpenAPI schema: /docs gets "Authorize", generated clients the key.

bearer       Authorization: Bearer <API key or watch token>
api_key      ?api_key=<API key>
watch_token  ?token=<watch token>: GET /tasks/{id} and its events only
Health checks stay open; without API_KEY every scheme is optional (`{}` in each list).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from server.access.auth import OPEN_PATHS

SCHEMES: dict[str, dict[str, str]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "The API key; or a watch token, which only reads one task and its events",
    },
    "api_key": {"type": "apiKey", "in": "query", "name": "api_key", "description": "The API key"},
    "watch_token": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "A watch token from POST /tasks (or minted by your backend) for this one task",
    },
}
WATCH_PATHS = frozenset({"/tasks/{task_id}", "/tasks/{task_id}/events"})


def declare_security(app: FastAPI, *, required: bool) -> None:
    """Add the schemes to `app`'s schema, and to each operation the ones it accepts."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _add_security(build(), required)
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]


def _add_security(schema: dict[str, Any], required: bool) -> None:
    schema.setdefault("components", {})["securitySchemes"] = SCHEMES
    for path, operations in schema.get("paths", {}).items():
        if path in OPEN_PATHS:
            continue
        for method, operation in operations.items():
            names = ["bearer", "api_key"]
            if method == "get" and path in WATCH_PATHS:
                names.append("watch_token")
            operation["security"] = [{n: []} for n in names] + ([] if required else [{}])
