from __future__ import annotations

import pytest

from taskstore.config import mask_url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://user:p%40ss@[::1]:6380/1", "rediss://user:***@[::1]:6380/1"),
        ("redis://host/0?db=1&password=pw", "redis://host/0?db=1&password=***"),
        ("unix:///run/redis.sock?password=pw", "unix:///run/redis.sock?password=***"),
    ],
)
def test_a_password_in_a_redis_url_is_masked_and_the_rest_kept(url: str, masked: str) -> None:
    assert mask_url(url) == masked
