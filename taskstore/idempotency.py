"""Idempotency-Key claims: one task per key and request body, on a single node and a cluster.

Where the claim shares a slot with the task's keys (one node), the submit script itself claims
the key: one round trip, as without a key. On a cluster it cannot (below), so it goes in two:

    POST + key ─▶ claim.lua ─┬ claimed  ─▶ submit with the claimed id (coalesced: claim moved to
                             │             the in-flight task; refused: claim dropped)
                             ├ held     ─▶ that task, once it exists ─▶ replayed
                             │             (never appears within `wait`: its request died between
                             │              claim and submit ─▶ settle.lua takes the claim over)
                             └ conflict ─▶ IdempotencyConflict (422)

The claim is a key of its own rather than part of the submit script: the request body decides
where a task lives (its signature's shard on a cluster), so the same key sent with another body
would land elsewhere and never see the first claim. The claim names its task id from the start,
so the usual submit costs one round trip more than one without a key, not two.

In both ways the claim holds "<fingerprint> <task id>" for IDEMPOTENCY_TTL seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from taskstore.coalesce import Coalescer
from taskstore.errors import IdempotencyConflict, IdempotencyPending, TaskNotFound
from taskstore.store import Claim, ScriptCall, Submission, TaskStore, new_task_id

Submit = Callable[[str | None, Claim | None], Awaitable[Submission]]

POLL_SECONDS = 0.005


@dataclass(frozen=True, slots=True)
class Replayed:
    """The answer to a repeat: the task the key's first request created (or joined), its state."""

    task_id: str
    state: bytes


class IdempotencyKeys:
    def __init__(self, store: TaskStore, ttl: int, *, same_slot: bool = True, wait: float = 5.0) -> None:
        self.store = store
        self.ttl = ttl
        self.same_slot = same_slot  # False on a Redis Cluster: claim in a round trip of its own
        self.wait = wait
        scripts = store.scripts
        self._claims: Coalescer[ScriptCall] = Coalescer(partial(store.run_scripts, scripts.claim))
        self._settles: Coalescer[ScriptCall] = Coalescer(partial(store.run_scripts, scripts.settle))

    async def submit(
        self, key: str, request: Callable[[], tuple[str, str]], submit: Submit
    ) -> Submission | Replayed:
        """`submit(task_id, claim)` once per key and request within the TTL; Replayed for repeats;
        IdempotencyConflict for the key with another request. `request()` is the request's
        signature and fingerprint (codec.fingerprint).
        """
        claim = self.store.keys.idempotency(key)
        if self.same_slot:  # the store makes the task id and the claim in its submit script
            sub = await submit(None, Claim(claim, self.ttl))
            return Replayed(sub.task_id, await self.store.state(sub.task_id)) if sub.replayed else sub
        signature, fingerprint = request()
        task_id = self.store.keys.new_task_id(signature, new_task_id())  # carries its shard
        reply = await self._claims.call(([claim], [fingerprint, task_id, self.ttl]))
        outcome, held = reply[0].decode(), reply[1].decode()
        if outcome == "conflict":
            raise IdempotencyConflict(held)
        if outcome == "held":
            replayed = await self._held(claim, fingerprint, held, task_id)
            if replayed is not None:
                return replayed
        return await self._submit(claim, fingerprint, task_id, submit)

    async def _submit(self, claim: str, fingerprint: str, task_id: str, submit: Submit) -> Submission:
        try:
            sub = await submit(task_id, None)
        except Exception:
            await self._settle(claim, fingerprint, task_id, "")
            raise
        if sub.task_id != task_id:  # coalesced onto a task in flight: repeats get that one
            await self._settle(claim, fingerprint, task_id, sub.task_id)
        return sub

    async def _held(self, claim: str, fingerprint: str, held: str, mine: str) -> Replayed | None:
        """The held task once it exists; None when its request died and the claim is ours now."""
        deadline = time.monotonic() + self.wait
        while True:
            try:
                return Replayed(held, await self.store.state(held))
            except TaskNotFound:
                pass  # its request is between claim and submit, or died there
            if time.monotonic() > deadline:
                if await self._settle(claim, fingerprint, held, mine):
                    return None
                raise IdempotencyPending(self.wait)
            await asyncio.sleep(POLL_SECONDS)

    async def _settle(self, claim: str, fingerprint: str, expected: str, new: str) -> bool:
        return bool(await self._settles.call(([claim], [fingerprint, expected, new, self.ttl])))
