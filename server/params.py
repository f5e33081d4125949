"""Checks of a task's params beyond JSON's types: numbers the store keeps exactly, demo limits.

The store encodes with orjson, which keeps integers of 64 bits (-2^63 .. 2^64-1) and finite
doubles. Beyond them a number changed silently: 2**70 was parsed as the float 1.18e21, 1e-400
as 0.0, and 1e400 (refused by orjson, then read by json.loads as inf) was stored as null. Such a
number now gets a 422 that names its field.

    POST body ─▶ orjson ─▶ may_lose_numbers(params)? ─▶ no ─▶ stored (the fast path)
                                                    └▶ yes ─▶ loads(): json.loads, each number
                                                             checked; unstorable() finds the field
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from taskstore.demo import DemoParams
from taskstore.errors import clip

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
# Where orjson puts what it changes: an integer beyond 64 bits becomes a float of magnitude
# 2^63 or more, a number too small for a double becomes 0.0 (and one too large is refused).
_BIG = float(2**63)


@dataclass(frozen=True, slots=True)
class Unstorable:
    """A number literal the store cannot keep exactly, in place of its value."""

    literal: str
    why: str


def may_lose_numbers(params: dict[str, Any]) -> bool:
    """Whether orjson may have changed a number of `params` while parsing it (never a false no).

    A float of 0 or beyond ±2^63 may be such a number, or may be just what the client wrote:
    `loads` tells them apart from the literal.
    """
    stack: list[Any] = [params]
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is float:
            if value == 0.0 or not -_BIG < value < _BIG:
                return True
        elif kind is dict:
            stack.extend(value.values())
        elif kind is list:
            stack.extend(value)
    return False


def _reject_constant(name: str) -> Any:
    # json.loads takes NaN and ±Infinity, which are not JSON; orjson (the fast path) refuses them.
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)


def _int(literal: str) -> int | Unstorable:
    # The length check first: int() of over 4300 digits raises a bare ValueError (a 500 before).
    if len(literal) <= 21 and _INT_MIN <= (value := int(literal)) <= _INT_MAX:
        return value
    return Unstorable(clip(literal), "an integer beyond 64 bits")


def _float(literal: str) -> float | Unstorable:
    value = float(literal)
    if value in (float("inf"), float("-inf")):
        return Unstorable(clip(literal), "beyond the range of a double")
    if value == 0 and any(c in "123456789" for c in literal.lower().partition("e")[0]):
        return Unstorable(clip(literal), "too small for a double (it would become 0)")
    return value


def loads(body: bytes) -> Any:
    """`body` as JSON, with an `Unstorable` in place of each number the store cannot keep."""
    return json.loads(body, parse_constant=_reject_constant, parse_int=_int, parse_float=_float)


def unstorable(params: dict[str, Any]) -> RequestValidationError | None:
    """The 422 naming the first number in `params` the store cannot keep, if there is one."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((k,), v) for k, v in params.items()]
    while stack:
        path, value = stack.pop()
        if isinstance(value, Unstorable):
            msg = f"Value error, {value.literal} cannot be stored exactly: {value.why}"
            loc = ("body", "params", *path)
            return RequestValidationError([{"type": "value_error", "loc": loc, "msg": msg, "input": None}])
        if isinstance(value, dict):
            stack += [((*path, k), v) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [((*path, i), v) for i, v in enumerate(value)]
    return None


def check_demo(params: dict[str, Any]) -> None:
    """RequestValidationError naming each demo param beyond the demo handler's limits."""
    try:
        DemoParams.model_validate(params)
    except ValidationError as e:
        errors = [{**err, "loc": ("body", "params", *err["loc"])} for err in e.errors(include_url=False)]
        raise RequestValidationError(errors) from e
