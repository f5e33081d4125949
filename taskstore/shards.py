"""Queue shards: which shard a request goes to, and the hash tag every id carries.

The queue is split into `QUEUE_SHARDS` shards. Each shard has a hash tag; every key of a task
(its hash, channel, queue stream, delayed set, dead letters, and the cache entry of its request
signature) carries that tag, so each Lua script touches one Redis Cluster slot.

    signature ──int(sig[:8], 16) % shards──▶ shard i ──▶ tag "i.k" ──▶ task id "i.k-<32 hex>"

Tags are chosen so that shard i's slot lies in the i-th of `shards` equal parts of the slot
space: whatever slot ranges the cluster's primaries own (redis-cli gives each an equal, contiguous
range), the shards spread over them in proportion. With 16 shards on 3 primaries a primary holds
5 or 6 shards, at most 1.13x its fair share.

A task id without "-" is a pre-shard id (32 hex): its tag is the whole id, which is exactly the
`{id}` hash tag of the old key layout, so its keys stay readable (see keys.py).
"""

from __future__ import annotations

import re
from functools import lru_cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

MAX_SHARDS = 1024
ID_SEPARATOR = "-"
_TASK_ID = re.compile(r"[A-Za-z0-9]+(\.[0-9]+-[0-9a-f]+)?")


@lru_cache(maxsize=8)
def shard_tags(count: int) -> tuple[str, ...]:
    """The hash tag of each of `count` shards, spread evenly over the slot space."""
    if not 1 <= count <= MAX_SHARDS:
        raise ValueError(f"QUEUE_SHARDS must be between 1 and {MAX_SHARDS}, got {count}")
    return tuple(_tag_in_part(i, count) for i in range(count))


def _tag_in_part(index: int, count: int) -> str:
    """The first tag "index.k" whose slot falls in the index-th part of the slot space."""
    low = index * REDIS_CLUSTER_HASH_SLOTS // count
    high = (index + 1) * REDIS_CLUSTER_HASH_SLOTS // count
    k = 0
    while True:
        tag = f"{index}.{k}"
        if low <= key_slot(tag.encode()) < high:
            return tag
        k += 1


def shard_index(signature: str, count: int) -> int:
    """The shard of a request signature (hex sha256): identical requests share a shard."""
    return int(signature[:8], 16) % count


def tag_of_signature(signature: str, count: int) -> str:
    return shard_tags(count)[shard_index(signature, count)]


def make_task_id(tag: str, unique: str) -> str:
    """A task id that carries its shard's tag."""
    return f"{tag}{ID_SEPARATOR}{unique}"


def split_task_id(task_id: str) -> tuple[str, str]:
    """(tag, rest) of a task id: the tag inside it and what follows; a pre-shard id is all tag."""
    cut = task_id.find(ID_SEPARATOR)
    if cut < 0:
        return task_id, ""
    return task_id[:cut], task_id[cut:]


def is_sharded_id(task_id: str) -> bool:
    """Whether the id names a shard (new layout) rather than being a pre-shard id."""
    return ID_SEPARATOR in task_id


def looks_like_task_id(text: str) -> bool:
    """Whether `text` has the form of a task id: "<tag>-<hex>", or a pre-shard id (hex)."""
    return len(text) <= 80 and _TASK_ID.fullmatch(text) is not None
