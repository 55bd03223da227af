"""sync.bwlimit: one byte rate shared by every transfer of a run."""

from __future__ import annotations

import threading
import time

import pytest

from syncd.bwlimit import MIN_READ, RateLimit
from syncd.config import parse_bwlimit
from tests.conftest import TOKEN, Syncd, file_catalog


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_reads_are_booked_one_after_another_at_the_rate():
    clock = FakeClock()
    rate = RateLimit(1000 * 1000, clock=clock)
    assert rate.book(250_000) == pytest.approx(0.25)
    # a second reader at the same moment waits behind the first one's bytes
    assert rate.book(250_000) == pytest.approx(0.5)
    clock.now += 0.5
    assert rate.book(100_000) == pytest.approx(0.1)


def test_time_spent_idle_is_not_saved_up_for_a_burst():
    clock = FakeClock()
    rate = RateLimit(1000, clock=clock)
    rate.book(1000)
    clock.now += 60
    assert rate.book(1000) == pytest.approx(1.0)


def test_one_read_asks_for_a_quarter_second_of_the_rate_but_at_least_16_kib():
    assert RateLimit(4 * 1024 * 1024).limit(1 << 20) == 1024 * 1024
    assert RateLimit(1 << 30).limit(1 << 20) == 1 << 20
    assert RateLimit(1000).limit(1 << 20) == MIN_READ
    assert RateLimit(1000).limit(100) == 100


def test_threads_together_keep_to_the_rate():
    """Four threads reading as fast as they may: the total over the wall time they took."""
    rate = RateLimit(2_000_000)
    done = [0] * 4

    def reader(i: int) -> None:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            count = rate.limit(1 << 20)
            done[i] += count
            time.sleep(rate.book(count))

    started = time.monotonic()
    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    # never more than the rate allows, plus one read per thread booked ahead
    assert sum(done) <= 2_000_000 * elapsed + 4 * rate.read_size
    assert all(count > 0 for count in done)


@pytest.mark.parametrize("raw", ["off", "OFF", "0", 0, ""])
def test_off_means_no_limit(raw):
    assert parse_bwlimit(raw) is None


def test_sizes_are_bytes_per_second():
    assert parse_bwlimit("20MB") == 20_000_000
    assert parse_bwlimit("500KiB") == 500 * 1024


def test_a_limited_sync_takes_as_long_as_the_limit_says_and_stores_every_byte(tmp_path):
    from syncd.simulator import Simulator

    # 6 files of 256 KiB = 1.5 MiB at 512 KiB/s: at least 3 s less the first reads booked ahead
    catalog = file_catalog(seed=7, stream="images", count=6, size=256 * 1024)
    with Simulator(catalog, token=TOKEN) as sim:
        syncd = Syncd(tmp_path, sim)
        started = time.monotonic()
        done = syncd.sync("--media", "images", "--bwlimit", "512KiB")
        elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert done.summary["downloaded"] == 6
    assert sum(p.stat().st_size for p in syncd.stored_files().values()) == 6 * 256 * 1024
    total, reads_ahead = 6 * 256 * 1024, 4 * 128 * 1024  # concurrency 4, read size rate/4
    assert elapsed >= (total - reads_ahead) / (512 * 1024)


def test_the_config_key_limits_too_and_off_on_the_command_line_lifts_it(tmp_path):
    from syncd.simulator import Simulator

    catalog = file_catalog(seed=8, stream="images", count=8, size=256 * 1024)
    with Simulator(catalog, token=TOKEN) as sim:
        syncd = Syncd(tmp_path, sim)
        env = {"SYNCD_SYNC__BWLIMIT": "256KiB"}
        started = time.monotonic()
        done = syncd.sync("--media", "images", env=env)
        limited = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        assert done.summary["downloaded"] == 8
        # 2 MiB at 256 KiB/s, less the reads booked ahead: at least 7 s
        assert limited >= (8 * 256 * 1024 - 4 * 64 * 1024) / (256 * 1024)
        (tmp_path / "again").mkdir()
        again = Syncd(tmp_path / "again", sim)
        started = time.monotonic()
        done = again.sync("--media", "images", "--bwlimit", "off", env=env)
        unlimited = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert done.summary["downloaded"] == 8
    assert unlimited < limited / 2


def test_a_bad_bwlimit_on_the_command_line_names_the_value(syncd):
    done = syncd.run("sync", "--bwlimit", "fast")
    assert done.returncode == 2
    assert "--bwlimit" in done.stderr and "'fast'" in done.stderr


def test_an_encoded_body_is_read_whole_into_views_smaller_than_its_chunks():
    from syncd.transfer import body_reader

    class Encoded:
        headers = {"Content-Encoding": "gzip"}

        def iter_content(self, size):
            yield b"a" * 40_000
            yield b"b" * 10

    read = body_reader(Encoded())
    view = memoryview(bytearray(MIN_READ))
    got = b""
    while count := read(view):
        got += bytes(view[:count])
    assert got == b"a" * 40_000 + b"b" * 10
