"""The Lua scripts, called by SHA with a reload when Redis has forgotten them (a restart).

redis-py's own Script object checks `SCRIPT EXISTS` before every pipeline, one round trip
more per batch; calling EVALSHA ourselves keeps a batch to one round trip.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from taskstore.model import ALLOWED


def _read(name: str) -> str:
    return files("taskstore").joinpath(name).read_text()


def _allowed_table() -> str:
    rows = [
        f"{src.value} = {{{', '.join(f'{dst.value} = true' for dst in sorted(dsts))}}}"
        for src, dsts in ALLOWED.items()
    ]
    return "local ALLOWED = {" + ", ".join(rows) + "}\n"


class Script:
    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    async def __call__(self, redis: Redis, keys: list[str], args: list[str | int]) -> Any:
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await redis.script_load(self.text)
            return await redis.evalsha(self.sha, len(keys), *keys, *args)

    def queue(self, pipe: Pipeline, keys: list[str], args: list[str | int]) -> None:
        pipe.evalsha(self.sha, len(keys), *keys, *args)


class Scripts:
    """The three scripts, each with the shared state encoder and the ALLOWED table."""

    def __init__(self) -> None:
        prefix = _allowed_table() + _read("state.lua") + _read("index.lua")
        self.submit = Script(prefix + _read("submit.lua"))
        self.transition = Script(prefix + _read("transition.lua"))
        self.snapshot = Script(prefix + _read("snapshot.lua"))

    async def load(self, redis: Redis) -> None:
        for script in (self.submit, self.transition, self.snapshot):
            await redis.script_load(script.text)
