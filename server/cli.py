"""`taskcast-api`: uvicorn serving `server.main:create_app`, with uvicorn's options passed through.

    taskcast-api --host 0.0.0.0 --port 8000 --workers 2 --timeout-graceful-shutdown 5
    python -m server.cli ...          (the same)

Every option of `uvicorn --help` works (the app is fixed); WEB_CONCURRENCY sets --workers.
"""

from __future__ import annotations

import sys

from uvicorn.main import main as uvicorn_main

APP = "server.main:create_app"


def command(argv: list[str]) -> list[str]:
    """uvicorn's arguments for `argv`: the factory first, then whatever the user gave."""
    return [APP, "--factory", *argv]


def main(argv: list[str] | None = None) -> int:
    args = command(sys.argv[1:] if argv is None else argv)
    # click parses the options and exits (SystemExit) with uvicorn's own status.
    uvicorn_main.main(args=args, prog_name="taskcast-api")
    return 0


if __name__ == "__main__":
    sys.exit(main())
