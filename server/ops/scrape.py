"""What `GET /metrics` answers: the metrics of this process, or of every API process sharing
PROMETHEUS_MULTIPROC_DIR, plus the queue depth read from Redis at scrape time.

    no PROMETHEUS_MULTIPROC_DIR ─▶ this process's registry (process_*, python_gc_* included)
    PROMETHEUS_MULTIPROC_DIR    ─▶ forget live gauges of dead processes ─▶ merge every process's
                                   files (counters and histograms summed, gauges summed over
                                   live processes)
    both                        ─▶ + taskcast_redis_up, taskcast_queue_* and taskcast_dead_letters
                                   by kind (one pipelined read)

prometheus_client reads PROMETHEUS_MULTIPROC_DIR when it is imported, so the variable must be
in the environment the processes start with (uvicorn passes it to its workers).
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from taskstore import TaskQueue
from taskstore.depth import ShardedDepth, queue_depths
from taskstore.kinds import DEFAULT_KIND
from taskstore.topology import REDIS_FAILURE

if TYPE_CHECKING:
    from server.ops.metrics import HubMeter

log = logging.getLogger(__name__)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def prepare_multiprocess_dir() -> None:
    """Before this process creates its metrics: make the directory, drop stale live gauges."""
    directory = multiprocess_dir()
    if directory is None:
        if int(os.environ.get("WEB_CONCURRENCY") or 1) > 1:
            log.warning(
                "WEB_CONCURRENCY > 1 without PROMETHEUS_MULTIPROC_DIR: each scrape of /metrics "
                "reports only the API process that happened to answer it"
            )
        return
    os.makedirs(directory, exist_ok=True)
    # A restarted container may hand out the same pids again: live gauges of "our" pid are
    # left from a previous run and would be read back as our starting values.
    mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]
    forget_dead_processes(directory)


def forget_dead_processes(directory: str) -> None:
    """Drop the live gauges (open streams, ...) of processes that are gone."""
    for pid in _live_gauge_pids(directory):
        if not _alive(pid):
            mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


async def render(queue: TaskQueue, hub: HubMeter, kinds: Sequence[str] = (DEFAULT_KIND,)) -> bytes:
    """The exposition text for one scrape."""
    hub.sync()
    try:
        depth: dict[str, ShardedDepth] | None = await queue_depths(queue.redis, queue.keys, kinds)
    except REDIS_FAILURE as e:
        log.warning("queue depth not readable for /metrics: %s", e)
        depth = None
    registry = CollectorRegistry()
    registry.register(_Scrape(depth))
    return generate_latest(registry)


class _Scrape:
    def __init__(self, depth: dict[str, ShardedDepth] | None) -> None:
        self.depth = depth

    def describe(self) -> Iterable[Metric]:
        return []  # no name checks: the names are the registries' own

    def collect(self) -> Iterable[Metric]:
        directory = multiprocess_dir()
        if directory is None:
            yield from REGISTRY.collect()
        else:
            forget_dead_processes(directory)
            yield from MultiProcessCollector(None, path=directory).collect()  # type: ignore[no-untyped-call]
        up = float(self.depth is not None)
        yield GaugeMetricFamily("taskcast_redis_up", "Whether Redis answered this scrape.", up)
        if self.depth is not None:
            yield from _depth_metrics(self.depth)


_DEPTHS = (
    ("length", "taskcast_queue_length", "Entries in a kind's task streams: waiting plus running."),
    ("pending", "taskcast_queue_pending", "Entries delivered to a worker and not yet acknowledged."),
    ("delayed", "taskcast_queue_delayed", "Retries and scheduled tasks waiting for their time."),
    ("dead", "taskcast_dead_letters", "Entries in a kind's dead-letter streams."),
)


def _depth_metrics(depths: dict[str, ShardedDepth]) -> Iterable[Metric]:
    """Each figure by kind, summed over its shards, and by kind and shard (label `shard`; "" =
    the pre-shard queue)."""
    for field, name, text in _DEPTHS:
        total = GaugeMetricFamily(name, text, labels=["kind"])
        shard_name = name.replace("taskcast_", "taskcast_shard_")
        per_shard = GaugeMetricFamily(shard_name, text, labels=["kind", "shard"])
        for kind, depth in depths.items():
            total.add_metric([kind], getattr(depth.total, field))
            for tag, shard_depth in depth.shards.items():
                per_shard.add_metric([kind, tag], getattr(shard_depth, field))
        yield total
        yield per_shard


def _live_gauge_pids(directory: str) -> set[int]:
    pids = set()
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        suffix = os.path.basename(path)[: -len(".db")].rsplit("_", 1)[-1]
        if suffix.isdigit():
            pids.add(int(suffix))
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
