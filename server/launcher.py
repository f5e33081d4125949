"""`python -m server.launcher`: the API, one worker and, if needed, a private Redis, in one go.

--cluster ─▶ start a private 3-primary Redis Cluster (EmbeddedCluster) and use it
     │ no
REDIS_URL set?  ── yes ─▶ use it
     │ no
localhost:6379 answers? ── yes ─▶ use it
     │ no
start a private redis-server (EmbeddedRedis) on a free port
     ▼
taskcast-api (python -m server.cli)  +  taskcast-worker (python -m worker)   (Ctrl-C stops all three)
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from types import FrameType

from server.embedded_cluster import EmbeddedCluster
from server.embedded_redis import EmbeddedRedis, answers
from taskstore.config import mask_url

log = logging.getLogger("taskcast")


def _redis_url(cluster: bool = False) -> tuple[str, EmbeddedRedis | EmbeddedCluster | None]:
    if cluster:
        nodes = EmbeddedCluster(primaries=3).start()
        log.info("started a private 3-primary Redis Cluster on ports %s", nodes.ports)
        return nodes.url, nodes
    configured = os.environ.get("REDIS_URL")
    if configured:
        log.info("using REDIS_URL=%s", mask_url(configured))
        return configured, None
    if answers("127.0.0.1", 6379):
        log.info("using the Redis that answers on localhost:6379")
        return "redis://127.0.0.1:6379/0", None
    embedded = EmbeddedRedis().start()
    log.info("REDIS_URL not set and nothing on localhost:6379: started a private Redis at %s", embedded.url)
    return embedded.url, embedded


def _children(redis_url: str, host: str, port: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "REDIS_URL": redis_url}
    api = [sys.executable, "-m", "server.cli", "--host", host, "--port", str(port)]
    api += ["--timeout-graceful-shutdown", "3"]
    worker = [sys.executable, "-m", "worker"]
    return [subprocess.Popen(worker, env=env), subprocess.Popen(api, env=env)]


def _stop(children: list[subprocess.Popen[bytes]], redis: EmbeddedRedis | EmbeddedCluster | None) -> None:
    for child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in reversed(children):
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
    if redis is not None:
        redis.remove()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the taskcast API and a worker.")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--cluster", action="store_true", help="run on a private 3-primary Redis Cluster")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        redis_url, embedded = _redis_url(args.cluster)
    except RuntimeError as e:  # no Redis to use and none to start: say what to install
        log.error("%s", e)
        return 1
    children = _children(redis_url, args.host, args.port)
    log.info("API on http://%s:%d (docs at /docs, demo page at /); Ctrl-C stops", args.host, args.port)

    def on_signal(signum: int, _: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        while all(child.poll() is None for child in children):
            try:
                children[-1].wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
        log.error("a child process exited; stopping the rest")
        return 1
    except KeyboardInterrupt:
        log.info("stopping")
        return 0
    finally:
        _stop(children, embedded)


if __name__ == "__main__":
    sys.exit(main())
