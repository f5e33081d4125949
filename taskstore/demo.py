"""The demo handler's params and their documented maxima.

Here, beside the request model, because both processes read them: the API refuses params
beyond the maxima with a 422 (VALIDATE_DEMO_PARAMS), and the demo handler reads its params
through the same model, so a task that reached it another way fails at once, never runs long.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

MAX_DURATION = 600.0  # seconds
MAX_STEPS = 1000


def _whole(value: Any) -> Any:
    return int(value) if type(value) is float and value.is_integer() else value


# An integer as JSON Schema means it: 4.0 is one too (strict mode alone refuses it, "4" stays refused).
WholeNumber = Annotated[int, BeforeValidator(_whole)]


class DemoParams(BaseModel):
    """`params` as the demo handler reads them; other keys are let through untouched."""

    model_config = ConfigDict(extra="allow", strict=True)  # "5" is no duration: the schema says number

    duration: float = Field(0.0, ge=0, le=MAX_DURATION, allow_inf_nan=False, description="seconds of work")
    steps: WholeNumber = Field(0, ge=0, le=MAX_STEPS, description="progress reports along the way")
    fail: bool = Field(False, description="fail every attempt")
    fail_times: WholeNumber = Field(0, ge=0, description="fail the first N attempts")


DEMO_KEYS = frozenset(DemoParams.model_fields)


def plainly_fits(params: dict[str, Any]) -> bool:
    """Whether `params` fits DemoParams on sight: no demo key, or each one of its plain type in range.

    The API's fast path (about 0.2 µs, where validating the model takes over a microsecond);
    False only means "validate the model", which also takes what it can convert ("5", 4.0).
    """
    if DEMO_KEYS.isdisjoint(params):
        return True
    duration, steps = params.get("duration", 0), params.get("steps", 0)
    fail, fail_times = params.get("fail", False), params.get("fail_times", 0)
    return (
        type(duration) in (int, float)
        and 0 <= duration <= MAX_DURATION
        and type(steps) is int
        and 0 <= steps <= MAX_STEPS
        and type(fail) is bool
        and type(fail_times) is int
        and fail_times >= 0
    )
