"""The dead letters of every kind, as GET /deadletters lists them and requeue finds them.

Each kind has its own dead-letter streams (taskstore/deadletters.py, one per shard), whose entry
ids repeat across kinds, so a letter of a kind other than the default one is named
"<kind>~<ref>" ("~" is in no kind's name and needs no escaping in a URL path); the default
kind's keep their plain ref, as before kinds. A failed task's id names its newest letter,
whatever its kind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from taskstore.deadletters import DeadLetter, DeadLetters
from taskstore.keys import Keys
from taskstore.kinds import DEFAULT_KIND
from taskstore.shards import looks_like_task_id
from taskstore.topology import Client

KIND_SEPARATOR = "~"


@dataclass(frozen=True, slots=True)
class KindLetter:
    kind: str
    letter: DeadLetter

    @property
    def ref(self) -> str:
        if self.kind == DEFAULT_KIND:
            return self.letter.ref
        return f"{self.kind}{KIND_SEPARATOR}{self.letter.ref}"


class KindsDeadLetters:
    def __init__(self, redis: Client, keys: Keys, kinds: Sequence[str]) -> None:
        self.redis = redis
        self.keys = keys
        self.kinds = list(kinds)

    def of(self, kind: str) -> DeadLetters:
        return DeadLetters(self.redis, self.keys.of_kind(kind))

    async def newest(self, count: int) -> list[KindLetter]:
        """The newest `count` dead letters of the kinds, newest first, the kinds read concurrently."""
        found = await asyncio.gather(*(self.of(kind).newest(count) for kind in self.kinds))
        letters = [
            KindLetter(kind, letter) for kind, some in zip(self.kinds, found, strict=True) for letter in some
        ]
        letters.sort(key=lambda k: (k.letter.time, *map(int, k.letter.entry_id.split("-"))), reverse=True)
        return letters[:count]

    async def holder(self, ident: str) -> tuple[DeadLetters, str] | None:
        """The dead letters holding the letter `ident` names, and its name there; None if none."""
        kind, sep, ref = ident.partition(KIND_SEPARATOR)
        if sep:
            return (self.of(kind), ref) if kind in self.kinds else None
        if not looks_like_task_id(ident):
            return self.of(DEFAULT_KIND), ident  # a plain ref: the default kind's
        for kind in self.kinds:  # a task id: its kind's letters hold it
            letters = self.of(kind)
            if await letters.find(ident) is not None:
                return letters, ident
        return None
