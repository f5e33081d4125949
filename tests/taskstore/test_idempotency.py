"""Idempotency-Key claims in taskstore, both ways: inside the submit script (one node) and in a
round trip of their own (a cluster): repeats, conflicts, takeover of a claim whose request died,
release after a refused submit, and a claim that follows a coalesced request to its task."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial

import pytest
from redis.asyncio import Redis

from taskstore import QueueFull, Submission, TaskQueue, TaskStore
from taskstore.codec import encode_request, signature
from taskstore.errors import IdempotencyConflict
from taskstore.idempotency import IdempotencyKeys, Replayed
from taskstore.store import Claim
from taskstore.topology import Topology
from tests.helpers import both_topologies

FINGERPRINT = "f1"

pytestmark = both_topologies


@pytest.fixture(params=[True, False], ids=["in the submit script", "a round trip of its own"])
def same_slot(request: pytest.FixtureRequest, topology: Topology) -> bool:
    """Both ways of claiming a key; on a cluster only the second (the claim has its own slot)."""
    if request.param and topology.cluster:
        pytest.skip("on a cluster the claim is never made inside the submit script")
    return bool(request.param)


def _request(prompt: str, fingerprint: str = FINGERPRINT) -> Callable[[], tuple[str, str]]:
    """The request's signature (its task's shard follows from it) and a given fingerprint."""
    return lambda: (signature(encode_request(prompt, {})), fingerprint)


def _claim_key(store: TaskStore, key: str) -> str:
    return store.keys.idempotency(key)


async def _submit(store: TaskStore, prompt: str, task_id: str | None, claim: Claim | None) -> Submission:
    return await store.submit(prompt, {}, task_id=task_id, claim=claim)


async def _full(task_id: str | None, claim: Claim | None) -> Submission:
    """A submit the queue limit refuses."""
    raise QueueFull(1, 1, 1)


async def test_a_claim_whose_request_died_before_submitting_is_taken_over(
    store: TaskStore, redis: Redis
) -> None:
    keys = IdempotencyKeys(store, ttl=60, same_slot=False, wait=0.05)
    await redis.set(_claim_key(store, "k"), f"{FINGERPRINT} never-created", ex=60)

    sub = await keys.submit("k", _request("taken over"), partial(_submit, store, "taken over"))
    again = await keys.submit("k", _request("taken over"), partial(_submit, store, "taken over"))

    assert isinstance(sub, Submission)
    assert isinstance(again, Replayed) and again.task_id == sub.task_id
    assert await redis.get(_claim_key(store, "k")) == f"{FINGERPRINT} {sub.task_id}".encode()


async def test_a_refused_submit_drops_the_claim_so_a_retry_may_claim_it(
    store: TaskStore, redis: Redis, same_slot: bool
) -> None:
    keys = IdempotencyKeys(store, ttl=60, same_slot=same_slot)

    with pytest.raises(QueueFull):
        await keys.submit("k", _request("refused"), _full)
    claim_after_refusal = await redis.get(_claim_key(store, "k"))
    sub = await keys.submit("k", _request("refused"), partial(_submit, store, "refused"))

    assert claim_after_refusal is None
    assert isinstance(sub, Submission) and not sub.coalesced


async def test_a_coalesced_request_moves_its_claim_to_the_task_in_flight(
    store: TaskStore, redis: Redis, same_slot: bool
) -> None:
    store.coalesce = True
    keys = IdempotencyKeys(store, ttl=60, same_slot=same_slot)
    first = await store.submit("shared", {})

    sub = await keys.submit("k", _request("shared"), partial(_submit, store, "shared"))
    again = await keys.submit("k", _request("shared"), partial(_submit, store, "shared"))

    assert isinstance(sub, Submission) and sub.coalesced and sub.task_id == first.task_id
    assert isinstance(again, Replayed) and again.task_id == first.task_id


async def test_repeats_answer_the_first_task_and_another_fingerprint_conflicts(
    store: TaskStore, same_slot: bool
) -> None:
    keys = IdempotencyKeys(store, ttl=60, same_slot=same_slot)

    first = await keys.submit("k", _request("once"), partial(_submit, store, "once"))
    repeats = await asyncio.gather(
        *(keys.submit("k", _request("once"), partial(_submit, store, "once")) for _ in range(5))
    )
    with pytest.raises(IdempotencyConflict):
        await keys.submit("k", _request("other", "f2"), partial(_submit, store, "other"))

    assert isinstance(first, Submission)
    assert {r.task_id for r in repeats} == {first.task_id}
    assert all(isinstance(r, Replayed) for r in repeats)
    assert await TaskQueue(store.redis, store.keys).backlog() == 1
