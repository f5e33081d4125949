"""The shards' tallies (index.lua) and the one read behind GET /stats and the dashboards.

    index.lua      one HINCRBY per index write into the shard's tallies hash: '<kind> <from>><to>'
                   (an index's size = what entered it - what left it == its ZCARD), and the ends
                   of the last 360 seconds, '<kind> <status>@<second % 360>' = second * 2^20 + n
    OpsReader.read one opsread.lua call per Redis node (one on a single node, one per primary on a
                   cluster): for each shard the tally fields asked for, the delayed and dead
                   letter counts of the queue shards asked for, and the newest ids of those of
                   the indexes asked for that the tallies just read say something entered
                   (never the streams: what waits there is PENDING minus delayed)
    reconcile.lua  once per process and shard, before its tallies are used: tallies := ZCARDs

So a reader's cost follows the nodes and what changed, never the number of tasks.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from redis.exceptions import RedisError

from taskstore.keys import Keys, Shard
from taskstore.model import TaskStatus
from taskstore.scripts import Script, source
from taskstore.topology import Client, route

RING = 360  # seconds of ends each shard keeps (index.lua)
_SECOND = 1 << 20  # a ring slot holds second * _SECOND + count
_ENDS = (TaskStatus.DONE, TaskStatus.FAILED)
# Where a member of a status's index can come from and go to (index.lua, reconcile.lua):
# '' is a submit or a trim, 'seed' what reconcile.lua counted, and only PENDING and RUNNING
# tasks move.
_SOURCES = ("", "seed", TaskStatus.PENDING.value, TaskStatus.RUNNING.value)

Position = tuple[float, str]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def in_fields(kind: str, status: TaskStatus) -> list[str]:
    return [f"{kind} {source}>{status.value}" for source in _SOURCES]


def out_fields(kind: str, status: TaskStatus) -> list[str]:
    moves = [f"{kind} {status.value}>{to.value}" for to in TaskStatus if to != status]
    gone = [f"{kind} {status.value}>"]  # trimmed, or moved where the target held it already
    return gone + moves if status in (TaskStatus.PENDING, TaskStatus.RUNNING) else gone


def count_fields(kinds: Iterable[str]) -> list[str]:
    """Every tally field the status counts of `kinds` are made of, each once."""
    fields = (
        f
        for kind in kinds
        for status in TaskStatus
        for f in in_fields(kind, status) + out_fields(kind, status)
    )
    return list(dict.fromkeys(fields))


def end_fields(kinds: Iterable[str], seconds: Iterable[int]) -> list[str]:
    return [f"{kind} {status.value}@{s % RING}" for s in seconds for kind in kinds for status in _ENDS]


@dataclass
class Tallies:
    """Tally fields read from shards, added up: status counts, and ends by kind and second."""

    values: dict[str, int] = field(default_factory=dict)
    by_second: dict[tuple[str, int], list[int]] = field(default_factory=dict)

    def add(self, fields: Sequence[str], reply: Sequence[bytes | None]) -> None:
        """One shard's HMGET of `fields`."""
        for name, value in zip(fields, reply, strict=True):
            if value is None:
                continue
            kind, _, what = name.partition(" ")  # a kind's name has no space (KIND_PATTERN)
            status, ring, _ = what.partition("@")
            if ring:  # second * _SECOND + count: the shard's own second, decoded before adding up
                second, count = divmod(int(value), _SECOND)
                self.by_second.setdefault((kind, second), [0, 0])[_ENDS.index(TaskStatus(status))] += count
            else:
                self.values[name] = self.values.get(name, 0) + int(value)

    def entered(self, kind: str, status: TaskStatus) -> int:
        return sum(self.values.get(f, 0) for f in in_fields(kind, status))

    def count(self, kind: str, status: TaskStatus) -> int:
        """The size of the kind's index of `status`, all shards: what entered it minus what left."""
        return self.entered(kind, status) - sum(self.values.get(f, 0) for f in out_fields(kind, status))

    def ends(self, kind: str, second: int) -> tuple[int, int]:
        """DONE and FAILED of the kind in `second` (0 where the ring read held an older second)."""
        done, failed = self.by_second.get((kind, second), (0, 0))
        return done, failed


@dataclass(frozen=True, slots=True)
class Sidelined:
    """A queue's tasks off its stream: PENDING ones waiting for their time, and dead letters."""

    delayed: int = 0
    dead: int = 0
    due: float | None = None  # when the first delayed one is due (None: none is delayed)


def sidelined_sum(parts: Iterable[Sidelined]) -> Sidelined:
    """Shards' counts added up (the earliest due time)."""
    rows = list(parts)
    dues = [p.due for p in rows if p.due is not None]
    return Sidelined(sum(p.delayed for p in rows), sum(p.dead for p in rows), min(dues, default=None))


@dataclass
class ShardRead:
    """What one read gave for one shard (tag)."""

    fields: list[bytes | None]
    sidelined: dict[str, Sidelined]  # by kind, the kinds asked for
    heads: dict[str, list[Position]]  # by index key
    states: dict[str, bytes | None]  # by task id, the tasks asked for: state JSON, None if gone


@dataclass(frozen=True, slots=True)
class HeadAsk:
    """An index whose newest ids to read if something entered it since it held `entered`
    (opsread.lua decides, from the tallies it reads in the same call)."""

    key: str
    rank: int  # the order in which moved indexes are read, lowest first
    entered: int  # what had entered it, by the tallies, when the caller last read its head


@dataclass
class Ask:
    """What to read of one shard: its tallies' fields, some kinds' delayed and dead letter
    counts, the newest ids of some indexes (which need the tallies), the states of some of its
    tasks."""

    tallies: bool = True
    sidelined_kinds: list[str] = field(default_factory=list)
    heads: list[HeadAsk] = field(default_factory=list)
    states: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.tallies or bool(self.sidelined_kinds) or bool(self.heads) or bool(self.states)


def _read_script() -> Script:
    """opsread.lua with the state encoder (state.lua) after its flags line, which must come first."""
    flags, _, body = source("opsread.lua").partition("\n")
    return Script(flags + "\n" + source("state.lua") + body)


class OpsReader:
    """The reads of GET /stats and the dashboard feed, shared by an API process."""

    read_script = _read_script()
    reconcile_script = Script(source("reconcile.lua"))

    def __init__(
        self,
        redis: Client,
        keys: Keys,
        kinds: Sequence[str],
        *,
        result_ttl: int,
        on_commands: Callable[[int, int], None] = lambda sent, inside: None,
    ) -> None:
        """`on_commands(sent, inside)` is told of the Redis commands of every script call: the
        call, and those it runs (the API's metrics)."""
        self.redis = redis
        self.on_commands = on_commands
        self.keys = keys
        self.kinds = list(kinds)
        self.result_ttl = result_ttl
        self.tags = keys.index_tags
        self._shards: dict[str, dict[str, Shard]] = {
            kind: {s.tag: s for s in keys.of_kind(kind).all_shards} for kind in self.kinds
        }
        self._index_of = {
            keys.index(kind, status, tag): (kind, status)
            for kind in self.kinds
            for status in TaskStatus
            for tag in self.tags
        }
        self._reconciled = False

    def queue_shard(self, kind: str, tag: str) -> Shard | None:
        return self._shards[kind].get(tag)

    async def reconcile(self) -> None:
        """Once per process: every shard's tallies made equal to its indexes (reconcile.lua)."""
        if self._reconciled:
            return
        statuses = [s.value for s in TaskStatus]
        for tag in self.tags:
            indexes = [self.keys.index(kind, status, tag) for kind in self.kinds for status in statuses]
            args: list[str | int] = [len(statuses), *statuses, *self.kinds]
            await self.reconcile_script(self.redis, [self.keys.tallies(tag), *indexes], args)
            self.on_commands(1, 1 + len(indexes))
        self._reconciled = True

    async def read(
        self, fields: Sequence[str], asks: dict[str, Ask], head_count: int, now: float, rows: int = 0
    ) -> dict[str, ShardRead]:
        """Each shard's answer to its Ask, one script call per node (a call per shard on a node
        that no longer holds one of them: a slot moved, a failover). Of the indexes asked for
        that something entered, each call reads heads until they may hold `rows` new ids."""
        await self.reconcile()
        wanted = {tag: ask for tag, ask in asks.items() if ask}
        header: list[str | int] = [
            head_count,
            repr(now - self.result_ttl),
            rows,
            len(fields),
            *fields,
        ]
        groups = await asyncio.gather(
            *(self._read_node(tags, wanted, header, fields) for tags in self._by_node(wanted))
        )
        return {tag: read for group in groups for tag, read in group.items()}

    def _by_node(self, tags: Iterable[str]) -> list[list[str]]:
        nodes: dict[Any, list[str]] = defaultdict(list)
        for tag in tags:
            nodes[route(self.redis, self.keys.tallies(tag)).get("target_nodes")].append(tag)
        return list(nodes.values())

    async def _read_node(
        self, tags: list[str], asks: dict[str, Ask], header: list[str | int], fields: Sequence[str]
    ) -> dict[str, ShardRead]:
        try:
            return await self._call(tags, asks, header, fields)
        except RedisError:
            if len(tags) == 1:
                raise
        reads = await asyncio.gather(*(self._call([tag], asks, header, fields) for tag in tags))
        return {tag: read for one in reads for tag, read in one.items()}

    async def _call(
        self, tags: list[str], asks: dict[str, Ask], header: list[str | int], fields: Sequence[str]
    ) -> dict[str, ShardRead]:
        ask = asks[tags[0]]
        if len(tags) == 1 and ask.tallies and not (ask.sidelined_kinds or ask.heads or ask.states):
            # A lone HMGET needs no script: one command where the call would be two (a single
            # node's usual tick, a shard per kind).
            values = await self.redis.hmget(self.keys.tallies(tags[0]), list(fields))
            self.on_commands(1, 0)
            return {tags[0]: ShardRead(cast(list[bytes | None], values), {}, {}, {})}  # bytes: no decoding
        args = list(header)
        at = {name: n for n, name in enumerate(fields, 1)}
        for tag in tags:
            args += self._block(tag, asks[tag], at)
        reply = await self.read_script(self.redis, [self.keys.tallies(tags[0])], args)
        reads = {tag: self._parse(tag, asks[tag], r, fields) for tag, r in zip(tags, reply, strict=True)}
        self.on_commands(1, sum(_commands(asks[tag], reads[tag]) for tag in tags))
        return reads

    def _block(self, tag: str, ask: Ask, at: dict[str, int]) -> list[str | int]:
        """The shard's part of the ARGV (opsread.lua); `at`: each field's position in the call."""
        shards = self._queue_shards(tag, ask)
        block: list[str | int] = [self.keys.tallies(tag) if ask.tallies else "", len(shards)]
        for shard in shards.values():
            block += [shard.delayed, shard.dead_letter]
        block.append(len(ask.heads))
        for head in ask.heads:
            kind, status = self._index_of[head.key]
            ins = [at[f] for f in in_fields(kind, status)]
            outs = [at[f] for f in out_fields(kind, status)]
            block += [head.key, head.rank, head.entered, len(ins), *ins, len(outs), *outs]
        block.append(len(ask.states))
        for task_id in ask.states:
            block += [self.keys.task(task_id), task_id]
        return block

    def _queue_shards(self, tag: str, ask: Ask) -> dict[str, Shard]:
        """By kind, the queue shards of `tag` whose delayed and dead letter counts are asked for."""
        shards = {kind: self.queue_shard(kind, tag) for kind in ask.sidelined_kinds}
        return {kind: shard for kind, shard in shards.items() if shard is not None}

    def _parse(self, tag: str, ask: Ask, reply: list[Any], fields: Sequence[str]) -> ShardRead:
        values, sidelined, heads, states = reply
        read = dict(zip(heads[::2], heads[1::2], strict=True))
        return ShardRead(
            fields=list(values),
            sidelined={
                kind: Sidelined(int(delayed), int(dead), None if due is None else float(due))
                for kind, (delayed, due, dead) in zip(self._queue_shards(tag, ask), sidelined, strict=True)
            },
            heads={_text(key): _positions(h) for key, h in read.items()},
            states={task_id: state or None for task_id, state in zip(ask.states, states, strict=True)},
        )


def _commands(ask: Ask, read: ShardRead) -> int:
    """What opsread.lua ran for the shard: HMGET; ZCARD and XLEN per queue shard, and a ZRANGE
    for the first due time where some are delayed; a ZRANGE per index read; an HMGET per state."""
    sidelined = sum(2 + (s.delayed > 0) for s in read.sidelined.values())
    return int(ask.tallies) + sidelined + len(read.heads) + len(ask.states)


def _positions(flat: list[Any]) -> list[Position]:
    """A ZRANGE ... WITHSCORES reply from a script: member, score, member, score ..."""
    return [(float(flat[i + 1]), _text(flat[i])) for i in range(0, len(flat), 2)]
