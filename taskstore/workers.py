"""Worker heartbeats: each worker writes its own line in one hash, the API reads them all.

    worker, every HEARTBEAT_INTERVAL ─HSET workers <name> <json>─▶ hash
    worker, clean stop               ─HDEL─▶ gone at once
    worker, killed (-9)              ─▶ its line ages; readers skip it once older than
                                        `gone_after` and delete it (one HGETALL, one HDEL)

Stamps are the worker's clock, compared with the reader's: processes of one deployment are
expected to share an NTP-synced clock (seconds of skew only shift when a worker shows as gone).
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ValidationError

from taskstore.keys import Keys
from taskstore.topology import Client


class WorkerBeat(BaseModel):
    """One worker as its last heartbeat described it."""

    name: str
    host: str
    pid: int
    kinds: list[str]
    concurrency: int
    running: int
    done: int
    failed: int
    started_at: float
    last_heartbeat: float


class Heartbeats:
    def __init__(self, redis: Client, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def beat(self, beat: WorkerBeat) -> None:
        await self.redis.hset(self.keys.workers, beat.name, beat.model_dump_json())

    async def remove(self, name: str) -> None:
        await self.redis.hdel(self.keys.workers, name)

    async def live(self, gone_after: float, now: float | None = None) -> list[WorkerBeat]:
        """Workers heard from within `gone_after` seconds, by name; older lines are deleted."""
        lines: dict[Any, Any] = await self.redis.hgetall(self.keys.workers)
        return await self.sift(lines, gone_after, now)

    async def sift(
        self, lines: dict[bytes, bytes], gone_after: float, now: float | None = None
    ) -> list[WorkerBeat]:
        """The live workers of an HGETALL reply; the others' lines are deleted."""
        oldest = (time.time() if now is None else now) - gone_after
        live, gone = [], []
        for name, raw in lines.items():
            beat = _beat(raw)
            if beat is not None and beat.last_heartbeat >= oldest:
                live.append(beat)
            else:
                gone.append(name)
        if gone:
            await self.redis.hdel(self.keys.workers, *gone)
        return sorted(live, key=lambda b: b.name)


def _beat(raw: bytes) -> WorkerBeat | None:
    try:
        return WorkerBeat.model_validate_json(raw)
    except ValidationError:
        return None  # a line no version of taskcast wrote: treated as gone
