"""The API process's Prometheus metrics, and the hooks the routes call to count and log.

    POST /tasks          ─▶ submitted(task_id, cached)     counter + one log line
    SSE / WS stream      ─▶ StreamMeter: open gauge +1, one log line
                              sent(event) ─▶ publish-to-delivery latency (live events only)
                              close()     ─▶ open gauge -1, one log line
    hub, per event       ─▶ HubMeter.delivered(event, n): the latency of the n sends made by the
                              hub itself (server/push/subscriber.py), one histogram update
    hub counters         ─▶ HubMeter copies them into metrics (every few seconds and per scrape)
    GET /metrics         ─▶ server/ops/scrape.py: these metrics + queue depth read from Redis

Metrics are created once per process, on first use, after the multiprocess directory (when
PROMETHEUS_MULTIPROC_DIR is set) is cleared of this process id's stale live gauges.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import astuple, dataclass

from prometheus_client import Counter, Gauge, Histogram

from server.ops.scrape import prepare_multiprocess_dir
from server.push.hub import Hub
from server.push.subscriber import Event

log = logging.getLogger("taskcast.api")

HUB_SYNC_SECONDS = 1.0
DELIVERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ApiMetrics:
    def __init__(self) -> None:
        submitted = Counter("taskcast_tasks_submitted", "Tasks accepted by POST /tasks.", ["cached"])
        # The children, looked up once: labels() takes a lock and hashes on every call.
        self.submitted = {cached: submitted.labels(str(cached).lower()) for cached in (False, True)}
        self.cancelled = Counter("taskcast_tasks_cancelled", "Tasks cancelled by DELETE /tasks/{id}.")
        self.streams = Gauge(
            "taskcast_streams_open",
            "Open event streams, by transport (sse, ws, ws_multiplexed).",
            ["transport"],
            multiprocess_mode="livesum",
        )
        self.delivery = Histogram(
            "taskcast_event_delivery_seconds",
            "From the transition that wrote an event (its updated_at) to its send to a subscriber.",
            buckets=DELIVERY_BUCKETS,
        )
        self.hub_reconnects = Counter("taskcast_hub_reconnects", "Pub/sub reconnections of the hubs.")
        self.hub_resyncs = Counter("taskcast_hub_resyncs", "Re-reads of every watched task by the hubs.")
        self.hub_superseded = Counter(
            "taskcast_hub_superseded", "Events replaced by a newer state of their task read with them."
        )
        self.hub_watched = Gauge(
            "taskcast_hub_watched_tasks", "Tasks the hubs are subscribed to.", multiprocess_mode="livesum"
        )
        self.hub_subscribers = Gauge(
            "taskcast_hub_subscribers",
            "Subscribers of the hubs: streams plus long-polls.",
            multiprocess_mode="livesum",
        )
        self.hub_connected = Gauge(
            "taskcast_hub_connected",
            "API processes whose pub/sub connection is up.",
            multiprocess_mode="livesum",
        )
        ops_reads = Counter(
            "taskcast_ops_redis_commands",
            "Redis commands of the operations reads (dashboard feed, GET /stats): sent, and run"
            " inside their scripts.",
            ["where"],
        )
        self.ops_sent, self.ops_inside = ops_reads.labels("sent"), ops_reads.labels("in_scripts")


@functools.cache
def api_metrics() -> ApiMetrics:
    """This process's metrics, created on first use."""
    prepare_multiprocess_dir()
    return ApiMetrics()


def submitted(task_id: str, cached: bool) -> None:
    """Count one accepted POST /tasks and log it."""
    api_metrics().submitted[cached].inc()
    log.info("task %s submitted (cached=%s)", task_id, cached, extra={"task_id": task_id, "cached": cached})


def ops_reads(sent: int, inside: int) -> None:
    """Count Redis commands of the operations reads: `sent` by the API, `inside` run by its scripts."""
    api_metrics().ops_sent.inc(sent)
    api_metrics().ops_inside.inc(inside)


def cancelled(task_id: str) -> None:
    """Count one cancellation (the API writes CANCELLED itself) and log it."""
    api_metrics().cancelled.inc()
    log.info("task %s cancelled", task_id, extra={"task_id": task_id})


class StreamMeter:
    """One open SSE or WebSocket stream: the open-streams gauge, its latency samples, one log line.

    The first event of each task on a stream is the snapshot read from the hash, not the delivery
    of a publish (its updated_at may be minutes old), so it is not a latency sample.
    """

    def __init__(self, transport: str, task_id: str | None = None) -> None:
        self.transport = transport
        self.task_id = task_id
        self.sent_count = 0
        self._opened = time.monotonic()
        self._started: set[str] = set()
        self._closed = False
        metrics = api_metrics()
        self._delivery = metrics.delivery
        self._open = metrics.streams.labels(transport)
        self._open.inc()
        # One INFO line per stream, at its end (with its length and events): the two lines per
        # stream were about a fifth of a short stream's API CPU (docs/performance.md).
        log.debug("%s opened", self._what(), extra=self._extra())

    def sent(self, event: Event | bytes) -> None:
        """Record that `event` is being sent to the client (control frames are not counted)."""
        if not isinstance(event, Event):
            return
        self.sent_count += 1
        if event.task_id not in self._started:
            self._started.add(event.task_id)
        elif event.updated_at:  # read once per event by the hub, not once per delivery
            self._delivery.observe(max(0.0, time.time() - event.updated_at))
        if event.terminal:  # a later subscription to the same task starts with a snapshot again
            self._started.discard(event.task_id)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._open.dec()
        seconds = time.monotonic() - self._opened
        extra = {**self._extra(), "events": self.sent_count, "seconds": round(seconds, 3)}
        log.info("%s closed after %.1f s, %d events", self._what(), seconds, self.sent_count, extra=extra)

    def _what(self) -> str:
        if self.task_id is None:
            return f"{self.transport} stream"
        return f"{self.transport} stream of task {self.task_id}"

    def _extra(self) -> dict[str, object]:
        if self.task_id is None:
            return {"transport": self.transport}
        return {"transport": self.transport, "task_id": self.task_id}


def observe_many(histogram: Histogram, amount: float, n: int) -> None:
    """`histogram.observe(amount)` n times, as one update. prometheus_client has no public way;
    this mirrors what its observe() does to the bucket and the sum."""
    histogram._sum.inc(amount * n)
    for bucket, bound in zip(histogram._buckets, histogram._upper_bounds, strict=True):
        if amount <= bound:
            bucket.inc(n)
            break


@dataclass(frozen=True, slots=True)
class _HubCounts:
    reconnects: int = 0
    resyncs: int = 0
    superseded: int = 0
    watched: int = 0
    subscribers: int = 0
    connected: int = 0


class HubMeter:
    """Copies the hub's own counters into the metrics, as differences, so that several hubs
    (several apps in one process, or several processes in multiprocess mode) add up."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._last = _HubCounts()
        self._task: asyncio.Task[None] | None = None
        hub.delivered = self.delivered

    @staticmethod
    def delivered(event: Event, n: int) -> None:
        """`n` live sends of `event` at once: the same latency, observed n times in one update."""
        if event.updated_at:
            observe_many(api_metrics().delivery, max(0.0, time.time() - event.updated_at), n)

    def start(self) -> HubMeter:
        self._task = asyncio.create_task(self._run(), name="hub-metrics")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        last = self._last
        self._apply(_HubCounts(last.reconnects, last.resyncs, last.superseded))

    def sync(self) -> None:
        hub = self.hub
        counts = _HubCounts(
            hub.reconnects,
            hub.resyncs,
            hub.superseded,
            hub.watched_count,
            hub.subscriber_count,
            int(hub.healthy),
        )
        self._apply(counts)

    def _apply(self, counts: _HubCounts) -> None:
        m = api_metrics()
        reconnects, resyncs, superseded, watched, subscribers, connected = (
            new - old for new, old in zip(astuple(counts), astuple(self._last), strict=True)
        )
        m.hub_reconnects.inc(max(0, reconnects))
        m.hub_resyncs.inc(max(0, resyncs))
        m.hub_superseded.inc(max(0, superseded))
        m.hub_watched.inc(watched)
        m.hub_subscribers.inc(subscribers)
        m.hub_connected.inc(connected)
        self._last = counts

    async def _run(self) -> None:
        # In multiprocess mode a scrape reads every process's files, but only runs this process's
        # code: the other hubs' numbers are as fresh as their last sync.
        while True:
            self.sync()
            await asyncio.sleep(HUB_SYNC_SECONDS)
