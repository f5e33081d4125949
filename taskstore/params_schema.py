"""The JSON schema of a task's `params` as the OpenAPI document shows it (never used to validate).

It says what the API accepts: any JSON object whose numbers the store keeps exactly (integers
in -2^63 .. 2^64-1, finite doubles; see server/params.py), with the demo handler's params in
their ranges. The API checks those with cheaper code; this is what clients and schema-driven
fuzzers read.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, RootModel, WithJsonSchema

from taskstore.demo import DemoParams

# JSON Schema cannot tell an integer literal from a float one of the same value (1e20 is an
# integer to it), so a large whole number fits this branch while the API refuses it written
# as an integer literal: the one place this schema is looser than the API.
_DOUBLE = {"type": "number", "minimum": -sys.float_info.max, "maximum": sys.float_info.max}


class StorableJson(RootModel[Any]):
    """A JSON value the store keeps exactly (its schema; never used to validate)."""

    root: (
        None
        | bool
        | str
        | Annotated[int, Field(ge=-(2**63), lt=2**64)]  # lt 2^64: a bound a double holds exactly
        | Annotated[float, WithJsonSchema(_DOUBLE)]
        | list[StorableJson]
        | dict[str, StorableJson]
    )


class Params(DemoParams):
    """Handler parameters: any JSON object; the demo handler reads the four below."""

    model_config = ConfigDict(title="Params")
    __pydantic_extra__: dict[str, StorableJson] = Field(init=False)


def _as_is(value: Any) -> Any:
    return value


# The annotation of TaskRequest.params: validated as a plain dict, documented as Params.
DOCUMENTED_PARAMS = BeforeValidator(_as_is, json_schema_input_type=Params)
