"""``sync.bwlimit``: one byte rate shared by every transfer of a run, as rclone's ``--bwlimit``.

A reservation clock (the "virtual scheduling" form of a token bucket): each read books its
bytes at the rate after the bytes booked before it, by any thread, and waits until its turn.
Reads are kept small (a quarter of a second's worth, at least 16 KiB), so that one transfer
cannot take the whole budget in one gulp and the total stays within one read per transfer of
the limit at any moment."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MIN_READ = 16 * 1024


class RateLimit:
    def __init__(
        self,
        bytes_per_s: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        if bytes_per_s <= 0:
            raise ValueError("the rate must be larger than zero")
        self.bytes_per_s = bytes_per_s
        self.read_size = max(MIN_READ, bytes_per_s // 4)
        self._clock = clock
        self._lock = threading.Lock()
        self._booked_until: float | None = None

    def limit(self, size: int) -> int:
        """How many bytes one read may ask for."""
        return min(size, self.read_size)

    def book(self, count: int) -> float:
        """Books ``count`` bytes just read; returns how many seconds the reader must wait
        before its next read so that all readers together keep to the rate."""
        now = self._clock()
        with self._lock:
            start = now if self._booked_until is None else max(self._booked_until, now)
            self._booked_until = start + count / self.bytes_per_s
            return max(0.0, self._booked_until - now)
