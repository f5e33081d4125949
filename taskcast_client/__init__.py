"""The Python client of taskcast (`pip install "taskcast[client]"`) and its CLI, `taskcast-watch`.

TaskcastClient is the async API, SyncTaskcastClient the same API blocking.
"""

from taskcast_client.client import (
    ApiError,
    GaveUp,
    TaskcastClient,
    TaskcastClientError,
    TaskFailed,
    TaskNotFound,
    Transport,
)
from taskcast_client.sync import SyncTaskcastClient

__all__ = [
    "ApiError",
    "GaveUp",
    "SyncTaskcastClient",
    "TaskFailed",
    "TaskNotFound",
    "TaskcastClient",
    "TaskcastClientError",
    "Transport",
]
