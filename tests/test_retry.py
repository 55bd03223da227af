"""The retry policy as a value."""

import random
from datetime import UTC, datetime

from syncd.api.retry import RetryPolicy, parse_retry_after


def test_retry_after_seconds_and_http_date():
    now = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7
    assert parse_retry_after("Tue, 24 Nov 2026 12:00:30 GMT", now) == 30
    assert parse_retry_after("Tue, 24 Nov 2026 11:00:00 GMT", now) == 0
    assert parse_retry_after("soon") is None


def test_backoff_grows_with_jitter_and_is_capped():
    policy = RetryPolicy(base_s=1, cap_s=8)
    rng = random.Random(1)
    delays = [policy.backoff(attempt, rng) for attempt in range(6)]
    assert 0.5 <= delays[0] <= 1
    assert 4 <= delays[3] <= 8
    assert all(d <= 8 for d in delays)
    assert len({round(policy.backoff(2, rng), 6) for _ in range(5)}) > 1


def test_retry_after_wins_over_backoff_but_is_capped():
    policy = RetryPolicy(max_retry_after_s=60)
    assert policy.wait_for(0, "3") == 3
    assert policy.wait_for(0, "3600") == 60
