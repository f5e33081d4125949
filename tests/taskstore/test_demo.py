from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from taskstore.demo import DEMO_KEYS, MAX_DURATION, MAX_STEPS, DemoParams, plainly_fits
from tests.fuzz.strategies import FUZZ, json_values

edges = st.sampled_from([0, -1, 0.5, MAX_DURATION, MAX_DURATION + 0.001, MAX_STEPS, MAX_STEPS + 1, True, "5"])
params = st.dictionaries(st.sampled_from([*sorted(DEMO_KEYS), "other"]), edges | json_values, max_size=5)


@settings(FUZZ, max_examples=300)
@given(params=params)
def test_params_that_plainly_fit_are_valid_demo_params(params: dict[str, Any]) -> None:
    if plainly_fits(params):
        DemoParams.model_validate(params)  # raises if the fast check let something through


def test_params_at_the_limits_plainly_fit_and_beyond_them_do_not() -> None:
    assert plainly_fits({"duration": MAX_DURATION, "steps": MAX_STEPS, "fail": False, "fail_times": 2})
    assert plainly_fits({"anything": 10**30})
    assert not plainly_fits({"duration": MAX_DURATION + 1})
    assert not plainly_fits({"steps": MAX_STEPS + 1})
