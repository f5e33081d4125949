"""The Python client of taskcast (`pip install "taskcast[client]"`) and its CLI, `taskcast-watch`."""

from taskcast_client.client import (
    ApiError,
    GaveUp,
    TaskcastClient,
    TaskcastClientError,
    TaskNotFound,
    Transport,
)

__all__ = ["ApiError", "GaveUp", "TaskNotFound", "TaskcastClient", "TaskcastClientError", "Transport"]
