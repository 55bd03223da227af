"""The retry policy, as a value (CONTRACT section 5: Retries)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def is_retriable(status: int) -> bool:
    """429 and every 5xx answer are worth another try; other statuses are final."""
    return status == 429 or 500 <= status <= 599


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    base_s: float = 0.5
    cap_s: float = 30.0
    max_retry_after_s: float = 300.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Exponential backoff with jitter for retry number ``attempt`` (0 = first retry):
        half the exponential step, plus up to as much again at random."""
        step = min(self.cap_s, self.base_s * 2.0**attempt)
        jitter = (rng or random).uniform(0, step / 2)
        return step / 2 + jitter

    def wait_for(self, attempt: int, retry_after: str | None, now: datetime | None = None) -> float:
        seconds = parse_retry_after(retry_after, now) if retry_after else None
        if seconds is None:
            return self.backoff(attempt)
        return min(seconds, self.max_retry_after_s)


def parse_retry_after(value: str, now: datetime | None = None) -> float | None:
    """Retry-After as delay-seconds or an HTTP date; None when it is neither."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())
