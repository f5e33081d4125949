"""One open dashboard: a WebSocket carrying the shared stats frames and the rows it shows, live.

receiver  {"op": "list", "status"?, "kind"?, "limit"?} ─▶ rows frame ("replace"), rows watched
          {"op": "more"}                               ─▶ the next page ("append"), watched
          {"op": "timeline", "task_id"}                ─▶ timeline frame; the task's events follow
          a bad frame ─▶ {"type": "error", "detail"} and the socket stays open
tailer    each feed tick, while the list is live (first page): the newest ids of its indexes
          (read by the feed, which asks each session which indexes it tails) not shown yet and
          newer than the list was when listed, at most TAIL_PER_TICK ─▶ subscribed (hub.follow)
          ─▶ their states, read in one call (feed.read_states) ─▶ rows ("prepend": each by age,
          as the feed may read an index's head a tick after another's, and it may hold a task
          older than the top row); a row that has ended is unsubscribed at once, and rows
          pushed past the limit are unwatched. So a dashboard's Redis cost is bounded by the
          feed's rows budget (server/ops/opsfeed.py), not by tasks.
sender    the only writer: the latest stats frame, answers, and each watched task's events
          (the hub's one pub/sub connection; at most one unsent state per task)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import WebSocket

from server.ops.opsfeed import HEAD, OpsFeed
from server.ops.tasklist import Filter, make_filter, with_kind
from server.push.hub import Hub
from server.push.subscriber import Event, Subscriber, TooManyNotices, decode_event
from taskstore import TaskNotFound, TaskStatus
from taskstore.index import Cursor, Position, TaskIndex
from taskstore.shards import looks_like_task_id

TAIL_PER_TICK = HEAD  # the feed reads as many newest ids of an index
MAX_ROWS = 500
_STATS = b""  # the notice standing for "send the feed's latest frame"


class BadOp(ValueError):
    """A frame the dashboard protocol does not know; answered with an error frame."""


class DashboardSession:
    def __init__(
        self, ws: WebSocket, hub: Hub, sub: Subscriber, feed: OpsFeed, index: TaskIndex, kinds: Sequence[str]
    ) -> None:
        self.ws, self.hub, self.sub, self.feed, self.index = ws, hub, sub, feed, index
        self.kinds = list(kinds)
        self.where: Filter = make_filter(None, None, self.kinds)
        self.limit = 50
        self.rows: list[Position] = []  # newest first
        self.since: Position = (0.0, "")  # the newest row when listed: the tail adds newer ones
        self.next_cursor: Cursor | None = None
        self.timeline: str | None = None
        self.listed = False
        self.ticked = asyncio.Event()
        self._lock = asyncio.Lock()
        self._stats_queued = False

    def on_tick(self) -> None:
        """Called by the feed after each sample: queue (at most) one stats frame, wake the tailer."""
        self.ticked.set()
        if self._stats_queued:
            return
        self._stats_queued = True
        try:
            self.sub.notify(_STATS)
        except TooManyNotices:
            self.sub.close()  # a client that reads nothing; never an error in the shared feed

    def tailed(self) -> list[str]:
        """Asked by the feed each tick: the indexes whose newest ids the tailer waits for."""
        return self._index_keys() if self._live() else []

    # -- sender ----------------------------------------------------------------------------

    async def send_forever(self, send_timeout: float) -> None:
        while True:
            item = await self.sub.next()
            async with asyncio.timeout(send_timeout):
                await self.ws.send_text(self._text(item))

    def _text(self, item: Event | bytes) -> str:
        if isinstance(item, Event):
            return '{"type":"task","state":' + item.text + "}"
        if item == _STATS:
            self._stats_queued = False
            return self.feed.frame
        return item.decode()

    # -- receiver --------------------------------------------------------------------------

    async def receive_forever(self) -> None:
        while True:
            text = await self.ws.receive_text()
            with self.sub.answering():
                try:
                    await self.handle(_parse(text))
                except BadOp as e:
                    self._send({"type": "error", "detail": str(e)})

    async def handle(self, op: dict[str, Any]) -> None:
        name = op.get("op")
        if name == "list":
            await self.show_list(op)
        elif name == "more":
            await self.more()
        elif name == "timeline":
            await self.open_timeline(op.get("task_id"))
        else:
            raise BadOp(f"unknown op {str(name)[:40]!r}; send list, more or timeline")

    async def show_list(self, op: dict[str, Any]) -> None:
        where, limit = _filter(op, self.kinds), _limit(op.get("limit", 50))
        async with self._lock:
            await self._unwatch([task_id for _, task_id in self.rows])
            self.where, self.limit, self.rows = where, limit, []
            page = await self.index.page(self._index_keys(), limit)
            rows = await self._watch(page.positions)
            self.rows, self.next_cursor = [p for p, _ in rows], page.next_cursor
            self.since = self.rows[0] if self.rows else (0.0, "")
            self.listed = True
        self._send_rows("replace", [state for _, state in rows])

    async def more(self) -> None:
        async with self._lock:
            if self.next_cursor is None or len(self.rows) >= MAX_ROWS:
                self._send_rows("append", [])
                return
            page = await self.index.page(self._index_keys(), self.limit, self.next_cursor)
            rows = await self._watch(page.positions)
            self.rows += [p for p, _ in rows]
            self.next_cursor = page.next_cursor
        self._send_rows("append", [state for _, state in rows])

    async def open_timeline(self, task_id: Any) -> None:
        if not isinstance(task_id, str) or not looks_like_task_id(task_id):
            raise BadOp("timeline needs a task_id")
        previous, self.timeline = self.timeline, task_id
        if previous and previous not in self._shown():
            await self.hub.unwatch(self.sub, previous)
        try:
            snapshot = await self.hub.watch(self.sub, task_id)
        except TaskNotFound as e:
            raise BadOp(str(e)) from e
        self._send({"type": "timeline", "state": with_kind(orjson.loads(snapshot.payload))})

    # -- tailer ----------------------------------------------------------------------------

    async def tail_forever(self) -> None:
        while True:
            await self.ticked.wait()
            self.ticked.clear()
            async with self._lock:
                added = await self._tail()
            if added:
                self._send_rows("prepend", added)

    async def _tail(self) -> list[dict[str, Any]]:
        if not self._live():
            return []
        # Older than the last row of a full list, a task would be pushed out at once.
        floor = max(self.since, self.rows[-1] if len(self.rows) >= self.limit else self.since)
        shown = self._shown()
        heads = {p: key for key in self._index_keys() for p in self.feed.heads.get(key, [])}
        fresh = sorted((p for p in heads if p > floor and p[1] not in shown), reverse=True)
        taken = fresh[:TAIL_PER_TICK]
        rows = await self._follow(taken, [p[1] for p in taken if not self.feed.is_final(heads[p])])
        self.rows = sorted([p for p, _ in rows] + self.rows, reverse=True)
        dropped, self.rows = self.rows[self.limit :], self.rows[: self.limit]
        if dropped:
            self.next_cursor = Cursor(*self.rows[-1])
            await self._unwatch([task_id for _, task_id in dropped])
        return [state for _, state in rows]

    async def _follow(
        self, positions: list[Position], live: list[str]
    ) -> list[tuple[Position, dict[str, Any]]]:
        """Subscribe to the `live` tasks (those not read from an index of an end: nothing follows
        an end), then read every state in one call: the rows. A task found ended needs its
        subscription no more; one gone is left out."""
        task_ids = [task_id for _, task_id in positions]
        try:
            await self.hub.follow(self.sub, live)
            states = await self.feed.read_states(task_ids) if task_ids else {}
        except BaseException:
            await self._unwatch(live)
            raise
        rows, done = [], []
        for position in positions:
            raw = states.get(position[1])
            if raw is not None:
                rows.append((position, with_kind(orjson.loads(raw))))
            if position[1] not in live:
                continue
            event = None if raw is None else decode_event(raw)
            if event is not None:
                self.sub.offer(event)  # older events of the task are not sent after its row
            if event is None or event.terminal:
                done.append(position[1])
        await self._unwatch(done)
        return rows

    def _live(self) -> bool:
        """Rows are pushed into a list the client asked for, never before its "replace"; a list
        the user paged through ("more") stays as it is."""
        return self.listed and not (self.rows and len(self.rows) > self.limit)

    # -- helpers ---------------------------------------------------------------------------

    def _index_keys(self) -> list[str]:
        return self.index.index_keys(self.where.kinds, self.where.statuses)

    def _shown(self) -> set[str]:
        return {task_id for _, task_id in self.rows}

    async def _watch(self, positions: list[Position]) -> list[tuple[Position, dict[str, Any]]]:
        """Watch each task; its current state (the hub's snapshot) in the order given."""
        snapshots = await asyncio.gather(
            *(self.hub.watch(self.sub, task_id) for _, task_id in positions), return_exceptions=True
        )
        rows = []
        for position, snapshot in zip(positions, snapshots, strict=True):
            if isinstance(snapshot, TaskNotFound):
                continue  # expired between the index read and the watch
            if isinstance(snapshot, BaseException):
                raise snapshot
            rows.append((position, with_kind(orjson.loads(snapshot.payload))))
        return rows

    async def _unwatch(self, task_ids: list[str]) -> None:
        for task_id in task_ids:
            if task_id != self.timeline:
                await self.hub.unwatch(self.sub, task_id)

    def _send_rows(self, mode: str, rows: list[dict[str, Any]]) -> None:
        cursor = self.next_cursor.encode() if self.next_cursor else None
        where = {"statuses": list(self.where.statuses), "kinds": self.where.kinds}
        self._send({"type": "rows", "mode": mode, "rows": rows, "next_cursor": cursor, "filter": where})

    def _send(self, frame: dict[str, Any]) -> None:
        self.sub.notify(orjson.dumps(frame))


def _parse(text: str) -> dict[str, Any]:
    try:
        op = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise BadOp(f"not JSON: {e}") from e
    if not isinstance(op, dict):
        raise BadOp("a frame is a JSON object with an op")
    return op


def _filter(op: dict[str, Any], kinds: list[str]) -> Filter:
    status, kind = op.get("status") or None, op.get("kind") or None
    if status is not None and status not in TaskStatus.__members__:
        raise BadOp(f"unknown status {str(status)[:40]!r}")
    if kind is not None and not isinstance(kind, str):
        raise BadOp("kind is a kind's name")
    try:
        return make_filter(TaskStatus(status) if status else None, kind, kinds)
    except ValueError as e:
        raise BadOp(str(e)) from e


def _limit(value: Any) -> int:
    if type(value) is not int or not 1 <= value <= 100:
        raise BadOp("limit is a whole number from 1 to 100")
    return value
