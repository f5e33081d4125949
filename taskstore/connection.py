"""A redis-py connection that packs commands in C, for the hot paths' pipelines.

redis-py's asyncio connection packs every argument of every command in Python (about 14 µs for
a transition's EVALSHA); its sync client already uses hiredis's C packer when hiredis is
installed, the asyncio one does not. This class does for asyncio what the sync client does:
about 2 µs a command, and the same bytes on the wire.

    Redis.from_url(url, connection_class=PackedConnection)   # redis:// only; rediss:// and
                                                             # unix:// keep their own classes
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hiredis import pack_command
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

# Packed by hiredis exactly as redis-py's Encoder would: str as UTF-8, int in decimal.
_AS_IS = frozenset({str, bytes, int})


class PackedConnection(Connection):
    def pack_command(self, *args: Any) -> list[bytes]:
        return [pack_command(_arguments(args, self.encoder.encoding))]

    def pack_commands(self, commands: Iterable[Any]) -> list[bytes]:
        encoding = self.encoder.encoding
        return [b"".join([pack_command(_arguments(tuple(command), encoding)) for command in commands])]


def _arguments(args: tuple[Any, ...], encoding: str) -> tuple[Any, ...]:
    """The arguments as redis-py's Encoder would send them, in the forms hiredis packs."""
    first = args[0]
    if isinstance(first, str) and " " in first:  # "XGROUP CREATE" is two words on the wire
        args = (*first.split(), *args[1:])
    elif isinstance(first, bytes) and b" " in first:
        args = (*first.split(), *args[1:])
    if encoding == "utf-8" and all(type(a) in _AS_IS for a in args):
        return args
    return tuple(_argument(a, encoding) for a in args)


def _argument(value: Any, encoding: str) -> Any:
    if isinstance(value, str):
        return value if encoding == "utf-8" else value.encode(encoding)
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):  # before int: a bool is an int
        raise DataError("Invalid input of type: 'bool'. Convert to a bytes, string, int or float first.")
    if isinstance(value, (int, float)):
        return repr(value)  # as redis-py sends them; hiredis would format floats its own way
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    kind = type(value).__name__
    raise DataError(f"Invalid input of type: '{kind}'. Convert to a bytes, string, int or float first.")
