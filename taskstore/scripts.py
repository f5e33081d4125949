"""The Lua scripts, called by SHA with a reload when Redis has forgotten them (a restart).

redis-py's own Script object checks `SCRIPT EXISTS` before every pipeline, one round trip
more per batch; calling EVALSHA ourselves keeps a batch to one round trip.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files
from typing import Any

from redis.exceptions import NoScriptError

from taskstore.model import ALLOWED
from taskstore.topology import Client, Pipe


def source(name: str) -> str:
    """The text of one of taskstore's Lua files."""
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

    async def __call__(self, redis: Client, keys: list[str], args: list[str | int]) -> Any:
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await redis.script_load(self.text)
            return await redis.evalsha(self.sha, len(keys), *keys, *args)

    def queue(self, pipe: Pipe, keys: list[str], args: list[str | int], **target: Any) -> None:
        # redis-py's cluster pipeline blocks its evalsha() method (a script's keys may span
        # slots); ours never do, and the command itself routes by its first key's slot (or by
        # `target`, topology.route(), which saves the cluster client finding the slot).
        pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args, **target)


class Scripts:
    """The task scripts, each with the shared state encoder and the ALLOWED table, and the two
    of Idempotency-Key claims."""

    def __init__(self) -> None:
        prefix = _allowed_table() + source("state.lua") + source("index.lua")
        self.submit = Script(prefix + source("submit.lua"))
        self.transition = Script(prefix + source("transition.lua"))
        self.snapshot = Script(prefix + source("snapshot.lua"))
        self.claim = Script(source("claim.lua"))
        self.settle = Script(source("settle.lua"))

    async def load(self, redis: Client) -> None:
        for script in (self.submit, self.transition, self.snapshot, self.claim, self.settle):
            await redis.script_load(script.text)
