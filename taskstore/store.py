"""TaskStore: create, read, move and cancel tasks; every write goes through one Lua script."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

from redis.exceptions import NoScriptError, ResponseError

from taskstore import codec
from taskstore.admission import Admission
from taskstore.coalesce import Coalescer
from taskstore.errors import IdempotencyConflict, QueueFull, TaskNotFound, TransitionRejected
from taskstore.index import MoveKeys, task_kind
from taskstore.keys import Keys
from taskstore.kinds import DEFAULT_KIND
from taskstore.model import TERMINAL, TaskStatus
from taskstore.moves import Move, Moved, moved, moved_or_rejected
from taskstore.scripts import Script, Scripts
from taskstore.topology import Client, Pipe, call, is_cluster, primaries_of, route

ScriptCall = tuple[list[str], list[str | int]]


def new_task_id() -> str:
    """32 random hex digits: the unique part of a task id, or an attempt token."""
    return os.urandom(16).hex()


class Submission(NamedTuple):  # a tuple: one is built per POST, on the hottest path
    task_id: str
    cached: bool
    result_json: bytes | None = None
    coalesced: bool = False  # the id is that of an identical request still PENDING or RUNNING
    run_at: float | None = None
    replayed: bool = False  # the id is the one the claim's first request got


class Claim(NamedTuple):
    """An Idempotency-Key claim made inside the submit script (where it shares the slot)."""

    key: str
    ttl: int


class TaskStore:
    def __init__(
        self,
        redis: Client,
        keys: Keys | None = None,
        *,
        result_ttl: int = 86400,
        cache_ttl: int = 600,
        max_queue: int = 0,
        retry_after: int = 1,
        wait_replicas: int = 0,
        wait_ms: int = 100,
        coalesce: bool = False,
    ) -> None:
        self.redis = redis
        self.keys = keys or Keys()
        self.result_ttl = result_ttl
        self.cache_ttl = cache_ttl
        self.max_queue = max_queue
        self.retry_after = retry_after
        self.coalesce = coalesce
        self._kinds: dict[str, Keys] = {}  # kind -> its keys
        self.scripts = Scripts()
        self._move_keys = MoveKeys(self.keys)
        self.publish = "SPUBLISH" if is_cluster(redis) else "PUBLISH"
        self._admissions: dict[str, Admission] = {}  # kind -> the budget of its backlog
        self.wait_replicas = wait_replicas
        self.wait_ms = wait_ms
        self._submits: Coalescer[ScriptCall] = Coalescer(self._submit_batch)
        self._snapshots: Coalescer[ScriptCall] = Coalescer(partial(self._pipeline, self.scripts.snapshot))

    async def submit(
        self,
        prompt: str,
        params: dict[str, Any],
        *,
        kind: str = DEFAULT_KIND,
        delay: float = 0.0,
        task_id: str | None = None,
        claim: Claim | None = None,
        coalesce: bool | None = None,
    ) -> Submission:
        """Answer from the cache, join an identical run in flight (with `coalesce`), or create a
        PENDING task and enqueue it (schedule it, with a delay); one round trip.

        Concurrent submits share that round trip (one pipeline), each with its own answer. With a
        `claim`, an Idempotency-Key already held answers its task (replayed), or raises
        IdempotencyConflict when it was held for another request.
        """
        raw = codec.encode_request(prompt, params, kind)
        sig = codec.signature(raw)
        task_id = task_id or self.keys.new_task_id(sig, new_task_id())
        join = self.coalesce if coalesce is None else coalesce
        keys, args = self._submit_call(kind, delay, raw, sig, task_id, join)
        if claim is not None:
            keys.append(claim.key)
            args += [codec.fingerprint(sig, delay), claim.ttl]
        admission = self._admission(kind)
        await admission.reserve()
        try:
            outcome, value = await self._submits.call((keys, args))
        except BaseException:
            admission.release()
            raise
        if outcome != b"queued":
            admission.release()
        if outcome == b"held":
            return Submission(value.decode(), cached=False, replayed=True)
        if outcome == b"conflict":
            raise IdempotencyConflict(value.decode())
        if outcome == b"full":
            raise QueueFull(int(value), self.max_queue, self.retry_after)
        if outcome == b"cached":
            return Submission(task_id, cached=True, result_json=value)
        if outcome == b"coalesced":
            return Submission(value.decode(), cached=False, coalesced=True)
        if outcome == b"scheduled":
            return Submission(task_id, cached=False, run_at=float(value))
        return Submission(task_id, cached=False)

    def _admission(self, kind: str) -> Admission:
        """MAX_QUEUE_LENGTH holds for each kind's backlog (over its shards), as its queue is its own."""
        if kind not in self._admissions:
            keys = self.keys.of_kind(kind)
            self._admissions[kind] = Admission(self.redis, keys, self.max_queue, self.retry_after)
        return self._admissions[kind]

    def _submit_call(
        self, kind: str, delay: float, raw: bytes, sig: str, task_id: str, coalesce: bool
    ) -> ScriptCall:
        kind_keys = self._kinds.get(kind) or self._kinds.setdefault(kind, self.keys.of_kind(kind))
        shard = kind_keys.shard_of_signature(sig)  # the new task's, by its id's tag
        pending = self.keys.index(kind, TaskStatus.PENDING, shard.tag)
        done = self.keys.index(kind, TaskStatus.DONE, shard.tag)
        task, cache, inflight = self.keys.task(task_id), self.keys.cache(sig), self.keys.inflight(sig)
        tallies = self.keys.tallies(shard.tag)
        keys = [cache, task, shard.stream, inflight, shard.delayed, pending, done, tallies]
        run_at, ttl = "", self.result_ttl
        if delay > 0:
            # The hash must outlive its wait, or a long delay would find nothing left to run.
            run_at, ttl = codec.encode_number(time.time() + delay), ttl + math.ceil(delay)
        args: list[str | int] = [task_id, raw.decode(), sig, ttl, self.cache_ttl, self.max_queue]
        return keys, [*args, kind, "1" if coalesce else "0", run_at]

    async def state(self, task_id: str) -> bytes:
        """The task's public state as JSON; TaskNotFound when unknown or expired.

        Concurrent reads share one round trip, as submits do.
        """
        raw = await self._snapshots.call(([self.keys.task(task_id)], [task_id]))
        if raw is None:
            raise TaskNotFound(task_id)
        return bytes(raw)

    async def states(self, task_ids: Sequence[str]) -> list[bytes | None]:
        """Many states in one pipelined round trip; None where a task is gone."""
        if not task_ids:
            return []
        calls: list[ScriptCall] = [([self.keys.task(t)], [t]) for t in task_ids]
        raws = await self._pipeline(self.scripts.snapshot, calls)
        for raw in raws:
            if isinstance(raw, Exception):
                raise raw
        return [None if raw is None else bytes(raw) for raw in raws]

    async def attempts(self, task_ids: Sequence[str]) -> list[tuple[str | None, int, str | None]]:
        """Status (None when gone), attempts and request signature of each task, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hmget(self.keys.task(task_id), ["status", "attempts", "signature"])
            replies: list[list[bytes | None]] = await pipe.execute()
        return [
            (s.decode() if s else None, int(a) if a and a.isdigit() else 0, g.decode() if g else None)
            for s, a, g in replies
        ]

    async def move(self, move: Move) -> Moved:
        """Apply one move; TransitionRejected when the state machine or the token forbids it."""
        reply = await self.scripts.transition(self.redis, *self._move_call(move))
        return moved(move, reply)

    async def move_many(
        self, moves: Sequence[Move], also: Callable[[Pipe], None] | None = None
    ) -> list[Moved | TransitionRejected]:
        """Apply moves in one pipelined round trip; a rejected one is returned, not raised.

        `also` queues further commands (acks, cache writes) into the same round trip.
        """
        calls = [self._move_call(m) for m in moves]
        replies = await self._pipeline(self.scripts.transition, calls, also)
        return [moved_or_rejected(m, r) for m, r in zip(moves, replies, strict=True)]

    async def cancel(self, task_id: str) -> Moved:
        """Move a PENDING or RUNNING task to CANCELLED (and out of coalescing)."""
        found = await self.redis.hmget(self.keys.task(task_id), ["signature", "kind"])
        sig, kind = (value.decode() if isinstance(value, bytes) else value for value in found)
        move = Move(task_id, TaskStatus.CANCELLED, {"progress": ""}, kind=kind, signature=sig)
        return await self.move(move)

    def queue_cache_write(self, pipe: Pipe, signature: str, result_json: str) -> None:
        """Queue the cache entry of a DONE request into `pipe`."""
        pipe.set(self.keys.cache(signature), result_json, ex=self.cache_ttl)

    async def _submit_batch(self, calls: Sequence[ScriptCall]) -> list[Any]:
        also = partial(self._queue_waits, [keys[1] for keys, _ in calls]) if self.wait_replicas else None
        return await self._pipeline(self.scripts.submit, calls, also)

    def _queue_waits(self, task_keys: list[str], pipe: Pipe) -> None:
        """WAIT for replicas after the submits, on each primary that took one (SUBMIT_WAIT_REPLICAS).

        WAIT counts the writes of its own connection, so it goes in the same pipeline: after the
        scripts on that primary's connection. Fewer replicas in time is not an error (the task
        exists on the primary); it only narrows the window in which a failover can lose it.
        """
        for target in primaries_of(self.redis, task_keys):
            pipe.execute_command("WAIT", self.wait_replicas, self.wait_ms, **target)

    async def run_scripts(self, script: Script, calls: Sequence[ScriptCall]) -> list[Any]:
        """Run `script` once per call in one pipeline; a reply per call (an error in its place)."""
        return await self._pipeline(script, calls)

    def _move_call(self, move: Move) -> ScriptCall:
        # A worker's store has its kind's keys; the API's learns the kind from the hash (cancel).
        kind, tag = task_kind(move.kind or self.keys.kind), self.keys.index_tag(move.task_id)
        keys = [self.keys.task(move.task_id), *self._move_keys(kind, move.to, tag)]
        optional = ""
        if move.dead_letter and move.to == TaskStatus.FAILED:
            # The kind's dead letters, in the task's shard; after the shard's tallies.
            keys.append(self.keys.of_kind(kind).shard_of_task(move.task_id).dead_letter)
            optional += "d"
        # A task cancelled while it waits for its start (a delay or a retry's backoff) leaves the
        # kind's delayed set now, not when it falls due and is read only to be acked.
        delayed = (
            self.keys.of_kind(kind).delayed_of_task(move.task_id) if move.to == TaskStatus.CANCELLED else None
        )
        if delayed is not None:
            keys.append(delayed)
            optional += "z"
        if move.signature and move.to in TERMINAL:
            keys.append(self.keys.inflight(move.signature))  # last
            optional += "i"
        args: list[str | int] = [
            move.task_id,
            self.keys.channel(move.task_id),
            move.to.value,
            move.token,
            move.new_token,
            "1" if move.new_attempt else "0",
            self.result_ttl,
            self.publish,
            optional,
        ]
        for name, value in move.fields.items():
            args += [name, value]
        return keys, args

    async def _pipeline(
        self, script: Script, calls: Sequence[ScriptCall], also: Callable[[Pipe], None] | None = None
    ) -> list[Any]:
        replies = await self._send(script, calls, range(len(calls)), [None] * len(calls), also)
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:
            # Redis restarted and lost its script cache; the failed calls did not run at all.
            await self.scripts.load(self.redis)
            replies = await self._send(script, calls, missing, replies)
        return replies

    async def _send(
        self,
        script: Script,
        calls: Sequence[ScriptCall],
        todo: Sequence[int],
        replies: list[Any],
        also: Callable[[Pipe], None] | None = None,
    ) -> list[Any]:
        if len(todo) == 1 and also is None:
            return await self._send_one(script, calls, todo[0], replies)
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in todo:
                keys, args = calls[i]
                script.queue(pipe, keys, args, **route(self.redis, keys[0]))
            if also is not None:
                also(pipe)
            sent = await pipe.execute(raise_on_error=False)
        for extra in sent[len(todo) :]:
            if isinstance(extra, Exception):
                raise extra
        merged = list(replies)
        for i, reply in zip(todo, sent[: len(todo)], strict=True):
            merged[i] = reply
        return merged

    async def _send_one(
        self, script: Script, calls: Sequence[ScriptCall], i: int, replies: list[Any]
    ) -> list[Any]:
        """`_send` of a lone call (most calls when lightly loaded): one command, no pipeline."""
        keys, args = calls[i]
        try:
            reply = await call(self.redis, keys[0], "EVALSHA", script.sha, len(keys), *keys, *args)
        except ResponseError as e:  # as a pipeline would return it: NoScriptError, a bad hash ...
            reply = e
        merged = list(replies)
        merged[i] = reply
        return merged
