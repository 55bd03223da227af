"""The retry policy's exact delays: backoff steps, jitter from the given generator, and
Retry-After as seconds or as a date."""

import random
from datetime import UTC, datetime

import pytest

from syncd.api.retry import RetryPolicy, parse_retry_after

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("attempt, step", [(0, 1.0), (1, 2.0), (3, 8.0), (6, 20.0)])
def test_backoff_is_half_the_doubling_step_plus_jitter_from_the_given_generator(attempt, step):
    policy = RetryPolicy(base_s=1.0, cap_s=20.0)
    expected = step / 2 + random.Random(7).uniform(0, step / 2)
    assert policy.backoff(attempt, random.Random(7)) == expected


def test_without_retry_after_the_wait_is_the_backoff_of_that_attempt():
    policy = RetryPolicy(base_s=1.0, cap_s=20.0)
    for attempt, step in ((0, 1.0), (4, 16.0)):
        for retry_after in (None, "", "soon"):
            assert step / 2 <= policy.wait_for(attempt, retry_after, NOW) <= step


def test_retry_after_as_a_date_counts_from_the_given_now():
    policy = RetryPolicy(max_retry_after_s=60)
    assert policy.wait_for(0, "Tue, 24 Nov 2026 12:00:30 GMT", NOW) == 30.0
    assert policy.wait_for(0, "Tue, 24 Nov 2026 13:00:00 GMT", NOW) == 60.0


def test_a_date_without_a_zone_is_taken_as_utc():
    assert parse_retry_after("Tue, 24 Nov 2026 12:00:30 -0000", NOW) == 30.0


def test_a_date_is_measured_from_the_clock_when_no_now_is_given():
    assert parse_retry_after("Sat, 01 Jan 2000 00:00:00 GMT") == 0.0
    assert parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT") > 365 * 86400


def test_delay_seconds_may_be_padded_and_are_floats():
    assert parse_retry_after(" 12 ") == 12.0
    assert isinstance(parse_retry_after("12"), float)
    assert parse_retry_after("-5") is None
