"""Worker subprocesses for fault tests: spawned with `spawn_worker`, their log kept on disk.

The log is read off the pipe by a thread: an unread stderr pipe fills up and blocks the worker.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
from pathlib import Path
from typing import IO

from tests.helpers import ROOT, spawn_worker

LOGS = ROOT / "test-artifacts"


class WorkerProcess:
    def __init__(self, redis_url: str, name: str, **env: str) -> None:
        self.proc = spawn_worker(redis_url, consumer_name=name, **env)
        LOGS.mkdir(exist_ok=True)
        self.log = LOGS / f"worker-{name}.log"
        if self.proc.stderr is None:
            raise RuntimeError("spawn_worker must pipe stderr")
        self._copier = threading.Thread(target=_copy, args=(self.proc.stderr, self.log), daemon=True)
        self._copier.start()

    def kill(self) -> None:
        """SIGKILL: the worker gets no chance to clean up."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    async def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, then wait for the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(asyncio.to_thread(self.proc.wait), timeout)

    async def exited(self) -> int:
        return await asyncio.to_thread(self.proc.wait)

    def stop(self) -> None:
        """Teardown: SIGTERM, then SIGKILL when it does not end in time."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._copier.join(timeout=5)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _copy(pipe: IO[bytes], path: Path) -> None:
    with pipe, path.open("wb") as out:
        for line in pipe:
            out.write(line)
            out.flush()
