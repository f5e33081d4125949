"""Task kinds: the names a task may carry, and which are accepted.

A kind names a queue of its own (see `Keys.of_kind`), so a worker takes only the kinds it
serves. The default kind keeps the stream, retry set and dead letters the service always had.
"""

from __future__ import annotations

import re

DEFAULT_KIND = "default"
# No ':' (it separates key parts) and short, so a kind is safe in every key and label.
KIND_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_KIND = re.compile(KIND_PATTERN)


def is_kind(name: str) -> bool:
    return bool(_KIND.match(name))


def parse_kinds(text: str) -> tuple[str, ...]:
    """Kinds of a comma-separated list, in order, without repeats; ValueError on a bad name."""
    kinds: list[str] = []
    for raw in text.split(","):
        name = raw.strip()
        if not name:
            continue
        if not is_kind(name):
            raise ValueError(f"bad kind name {name!r}: lowercase letters, digits, '_' and '-', at most 64")
        if name not in kinds:
            kinds.append(name)
    return tuple(kinds)
