from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from taskstore import TaskStatus
from taskstore.connection import PackedConnection

COMMANDS: list[tuple[Any, ...]] = [
    ("EVALSHA", "a" * 40, 1, "taskcast:task:{x}", "", 86400, 1.5, 0.1, -3, b"raw\r\n", "héllo"),
    ("XGROUP CREATE", "stream", "group", "0"),
    (b"CONFIG GET", "maxmemory"),
    ("HSET", "k", "status", TaskStatus.DONE, "blob", bytearray(b"ba"), "view", memoryview(b"mv")),
]


@pytest.mark.parametrize("command", COMMANDS)
def test_packs_the_same_bytes_as_redis_py(command: tuple[Any, ...]) -> None:
    expected = b"".join(Connection().pack_command(*command))

    assert b"".join(PackedConnection().pack_command(*command)) == expected


def test_packs_a_pipeline_the_same_as_redis_py() -> None:
    expected = b"".join(Connection().pack_commands(COMMANDS))

    assert b"".join(PackedConnection().pack_commands(COMMANDS)) == expected


@pytest.mark.parametrize("value", [True, None, object()])
def test_refuses_what_redis_py_refuses(value: object) -> None:
    with pytest.raises(DataError):
        PackedConnection().pack_command("SET", "k", value)


async def test_a_client_with_it_talks_to_redis(redis_server: str) -> None:
    client = Redis.from_url(redis_server, connection_class=PackedConnection)
    try:
        async with client.pipeline(transaction=False) as pipe:
            pipe.set("packed:k", "v é", ex=60)
            pipe.get("packed:k")
            pipe.delete("packed:k")
            replies = await pipe.execute()
    finally:
        await client.aclose()

    assert replies == [True, "v é".encode(), 1]
