"""Crash points for fault tests: with TASKCAST_FAULT=<name> the worker dies at once at that point.

`os._exit`, like a SIGKILL at the worst moment: no `finally`, no flush of queued writes or acks.
Unset (always, outside tests) a point costs one environment lookup, on paths that are not hot.
"""

from __future__ import annotations

import os

FAULT_ENV = "TASKCAST_FAULT"
EXIT_CODE = 70
AFTER_FINAL_FAILURE = "after-final-failure"


def crash_point(name: str) -> None:
    """Exit the process now if the fault `name` is switched on."""
    if os.environ.get(FAULT_ENV) == name:
        os._exit(EXIT_CODE)
