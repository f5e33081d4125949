"""Every Redis key and channel name taskcast uses, and nothing else spells one.

Key layout (`{...}` is the Redis Cluster hash tag; `T` is a shard's tag, see shards.py):

    {prefix}:task:{T}-<hex>        hash of a task whose id is "T-<hex>"
    {prefix}:events:{T}-<hex>      its pub/sub channel (SPUBLISH on a cluster)
    {prefix}:cache:{T}<signature>  cached result of a request; T = the signature's shard
    {queue}:{T}                    the shard's stream (consumer group "workers")
    {queue}:{T}:delayed            the shard's retries, scored by due time
    {queue}:{T}:dead               the shard's dead letters
    {prefix}:hub                   a channel every API hub subscribes at start

Everything a script touches for one task shares its tag, so every script runs on one slot.
Each kind has its own queue shards, `{queue}:kind:<kind>:{T}` (the default kind's are
`{queue}:{T}`), with the same tags: `of_kind(kind)` gives these keys with that kind's shards.
`{prefix}:inflight:{T}<sig>` names the PENDING or RUNNING task of a request (coalescing), in its
signature's slot; `{prefix}:idempotency:<key>` is an Idempotency-Key's claim, in a slot of its own.

The layout before shards is still readable: an id without "-" (32 hex) is its own tag, so
`task(id)` and `channel(id)` give the old `{prefix}:task:{<id>}` names; `legacy` is the old
single stream with its delayed set and dead letters, which workers keep draining on a single
node (`legacy_queue`). Its keys span slots, but taskcast never ran on a cluster before shards,
so a cluster has no such queue and its Keys leave it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from taskstore import shards
from taskstore.kinds import DEFAULT_KIND


@dataclass(frozen=True, slots=True)
class Shard:
    """One queue shard's keys; `tag` is "" for the pre-shard (legacy) queue."""

    tag: str
    stream: str
    delayed: str
    dead_letter: str


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "taskcast"
    queue: str = "task_stream"
    shard_count: int = 1
    legacy_queue: bool = True
    kind: str = DEFAULT_KIND  # whose queue shards `shards`, `all_shards` and `shard_of_*` name
    _tags: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tags", shards.shard_tags(self.shard_count))

    # -- one task -------------------------------------------------------------------------

    def task(self, task_id: str) -> str:
        tag, rest = shards.split_task_id(task_id)
        return f"{self.prefix}:task:{{{tag}}}{rest}"

    def channel(self, task_id: str) -> str:
        tag, rest = shards.split_task_id(task_id)
        return f"{self.prefix}:events:{{{tag}}}{rest}"

    def task_id_from_channel(self, channel: str) -> str:
        start = channel.find("{")
        end = channel.find("}", start + 1)
        if start < 0 or end < 0:
            raise ValueError(f"not a taskcast channel name: {channel!r}")
        return channel[start + 1 : end] + channel[end + 1 :]

    def new_task_id(self, signature: str, unique: str) -> str:
        """The id of a new task for a request with this signature: it carries the shard's tag."""
        return shards.make_task_id(shards.tag_of_signature(signature, self.shard_count), unique)

    def cache(self, signature: str) -> str:
        tag = shards.tag_of_signature(signature, self.shard_count)
        return f"{self.prefix}:cache:{{{tag}}}{signature}"

    def inflight(self, signature: str) -> str:
        """Id of the PENDING or RUNNING task of this request, while there is one (coalescing)."""
        tag = shards.tag_of_signature(signature, self.shard_count)
        return f"{self.prefix}:inflight:{{{tag}}}{signature}"

    def idempotency(self, key: str) -> str:
        """The claim of one Idempotency-Key (1 to 255 visible ASCII characters): its request
        fingerprint and task id."""
        return f"{self.prefix}:idempotency:{key}"

    # -- kinds ----------------------------------------------------------------------------

    def of_kind(self, kind: str) -> Keys:
        """These keys with `kind`'s own queue shards (streams, retry sets, dead letters)."""
        return self if kind == self.kind else replace(self, kind=kind)

    @property
    def _queue(self) -> str:
        return self.queue if self.kind == DEFAULT_KIND else f"{self.queue}:kind:{self.kind}"

    @property
    def _has_legacy(self) -> bool:
        # Only the default kind existed before shards.
        return self.legacy_queue and self.kind == DEFAULT_KIND

    # -- shards ---------------------------------------------------------------------------

    @property
    def shards(self) -> list[Shard]:
        """The current shards, in order."""
        return [self._shard(tag) for tag in self._tags]

    @property
    def all_shards(self) -> list[Shard]:
        """The current shards and the legacy queue if kept: what workers read and operators list."""
        return [*self.shards, self.legacy] if self._has_legacy else self.shards

    @property
    def legacy(self) -> Shard:
        """The single queue of the layout before shards."""
        return Shard("", self.queue, f"{self.queue}:delayed", f"{self.queue}:dead")

    def shard_of_task(self, task_id: str) -> Shard:
        """The shard holding a task's queue entry, retries and dead letter."""
        if not shards.is_sharded_id(task_id):
            # No id without a shard is made on a cluster; a stray one is filed under shard 0.
            return self.legacy if self._has_legacy else self.shards[0]
        return self._shard(shards.split_task_id(task_id)[0])

    def index_tag(self, task_id: str) -> str:
        """The tag of the list index and end buckets a task's moves write: its shard's, or on a
        cluster, for an id without a shard (none is made there), the id's own tag, so that every
        key of the move stays in one slot."""
        if shards.is_sharded_id(task_id) or self.legacy_queue:
            return self.shard_of_task(task_id).tag
        return shards.split_task_id(task_id)[0]

    def delayed_of_task(self, task_id: str) -> str | None:
        """The delayed set a task waits in for its start or a retry; None for an id without a
        shard on a cluster (none is made there, and shard 0's set is another slot)."""
        if shards.is_sharded_id(task_id) or self.legacy_queue:
            return self.shard_of_task(task_id).delayed
        return None

    def shard_of_signature(self, signature: str) -> Shard:
        return self._shard(shards.tag_of_signature(signature, self.shard_count))

    def _shard(self, tag: str) -> Shard:
        stream = f"{self._queue}:{{{tag}}}"
        return Shard(tag, stream, f"{stream}:delayed", f"{stream}:dead")

    @property
    def hub_channel(self) -> str:
        """Channel every API hub subscribes at start, so its pub/sub connection exists at once."""
        return f"{self.prefix}:hub"

    @property
    def group(self) -> str:
        return "workers"

    def index(self, kind: str, status: str, tag: str) -> str:
        """Sorted set of the ids of one kind's tasks in one status in one shard (`tag`), scored by
        created_at: the scripts keep it in the task's slot; GET /tasks merges the shards'."""
        return f"{self.prefix}:index:{{{tag}}}:{kind}:{status}"

    def tallies(self, tag: str) -> str:
        """Hash of one shard's counts, all kinds: what entered and left each index, and the
        DONE/FAILED ends of the last minutes by second (index.lua, read by tallies.py)."""
        return f"{self.prefix}:tallies:{{{tag}}}"

    @property
    def index_tags(self) -> list[str]:
        """The tag of every shard (and of the legacy queue, ""), for readers of the indexes."""
        return [shard.tag for shard in self.all_shards]

    @property
    def workers(self) -> str:
        """Hash of worker name -> its last heartbeat (JSON)."""
        return f"{self.prefix}:workers"
