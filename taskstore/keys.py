"""Every Redis key and channel name taskcast uses, and nothing else spells one.

Task keys carry the id in a `{...}` hash tag so that a task's hash and its channel land in
the same Redis Cluster slot.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "taskcast"
    queue: str = "task_stream"

    def task(self, task_id: str) -> str:
        return f"{self.prefix}:task:{{{task_id}}}"

    def channel(self, task_id: str) -> str:
        return f"{self.prefix}:events:{{{task_id}}}"

    @property
    def hub_channel(self) -> str:
        """Channel every API hub subscribes at start, so its pub/sub connection exists at once."""
        return f"{self.prefix}:hub"

    def cache(self, signature: str) -> str:
        return f"{self.prefix}:cache:{signature}"

    @property
    def stream(self) -> str:
        return self.queue

    @property
    def dead_letter(self) -> str:
        return f"{self.queue}:dead"

    @property
    def delayed(self) -> str:
        """Sorted set of task ids waiting for a retry, scored by the time they are due."""
        return f"{self.queue}:delayed"

    @property
    def group(self) -> str:
        return "workers"

    def index(self, kind: str, status: str) -> str:
        """Sorted set of the ids of one kind's tasks in one status, scored by created_at.

        One per shard on a cluster (the shard's tag goes here); GET /tasks merges them.
        """
        return f"{self.prefix}:index:{kind}:{status}"

    def ends(self, kind: str, minute: int) -> str:
        """Hash of DONE/FAILED counts per second (fields `<second>:<status>`) of one minute."""
        return f"{self.prefix}:ends:{kind}:{minute}"

    @property
    def workers(self) -> str:
        """Hash of worker name -> its last heartbeat (JSON)."""
        return f"{self.prefix}:workers"

    def task_id_from_channel(self, channel: str) -> str:
        start, end = channel.find("{"), channel.rfind("}")
        if start < 0 or end < start:
            raise ValueError(f"not a taskcast channel name: {channel!r}")
        return channel[start + 1 : end]
