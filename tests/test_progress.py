"""What a long run shows while it works: the live display on a real pseudo-terminal (read back
through a terminal emulator, pyte), progress events off a terminal, and the log levels."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pexpect
import pyte
import pytest

from syncd.progress import Meter, StatsLog, clock
from syncd.status import human_size
from syncd.summary import Summary
from tests.conftest import TOKEN, Syncd, file_catalog
from tests.test_bwlimit import FakeClock

COLUMNS, ROWS = 220, 50


@dataclass
class OnTerminal:
    returncode: int
    raw: bytes  # every byte the program wrote to its terminal
    screen: list[str]  # what the terminal shows at the end, row by row

    full_rows: list[str]  # the same, unstripped

    def logical_line(self, row: int) -> str:
        """The line that starts at ``row``, joined again where the terminal wrapped it."""
        text = self.full_rows[row]
        while len(text) % COLUMNS == 0 and row + 1 < len(self.full_rows):
            row += 1
            nxt = self.full_rows[row]
            if not nxt.strip() or re.match(r"\d{4}-\d\d-\d\dT", nxt):
                break
            text += nxt
            if nxt.rstrip() != nxt:  # it ended before the edge
                break
        return text.rstrip()

    def rows_with(self, text: str) -> list[int]:
        return [number for number, row in enumerate(self.screen) if text in row]


def on_terminal(
    syncd: Syncd, *args: str, timeout: float = 120, once: tuple[bytes, Callable] | None = None
) -> OnTerminal:
    """Runs ``syncd ARGS`` with stdin, stdout and stderr on one pseudo-terminal; ``once`` is
    (pattern, action): the action runs when the output first matches the pattern."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "syncd", *args],
        cwd=str(syncd.home),
        env={**syncd.env, "TERM": "xterm-256color"},
        dimensions=(ROWS, COLUMNS),
        timeout=timeout,
    )
    raw = b""
    while True:
        try:
            raw += child.read_nonblocking(65536, timeout=timeout)
        except pexpect.EOF:
            break
        if once is not None and re.search(once[0], raw):
            once[1]()
            once = None
    child.close()
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.ByteStream(screen).feed(raw)
    rows = list(screen.display)
    return OnTerminal(child.exitstatus, raw, [row.rstrip() for row in rows], rows)


@pytest.fixture
def slow_syncd(tmp_path):
    """Eight files of 256 KiB at 512 KiB/s: a run of about four seconds, long enough for a
    dozen redraws whatever the machine's speed."""
    from syncd.simulator import Simulator

    with Simulator(
        file_catalog(seed=21, stream="images", count=8, size=256 * 1024), token=TOKEN
    ) as sim:
        syncd = Syncd(tmp_path, sim)
        syncd.env["SYNCD_SYNC__BWLIMIT"] = "512KiB"
        yield syncd


def files_counts(raw: bytes) -> set[str]:
    return set(re.findall(rb"files (\d+/\d+)", raw))


# --- on a terminal ----------------------------------------------------------------------------


def test_the_display_updates_in_place_and_ends_showing_every_file(slow_syncd):
    run = on_terminal(slow_syncd, "sync", "--media", "images", "--json")
    assert run.returncode == 0, run.screen
    # it was drawn many times, with the count moving ...
    assert len(files_counts(run.raw)) >= 4, files_counts(run.raw)
    # ... yet the screen holds it once: each redraw replaced the last
    assert len(run.rows_with("licenses paged")) == 1, run.screen
    [row] = run.rows_with("files ")
    assert "files 8/8" in run.screen[row]
    assert "2.0 MiB" in run.screen[row] and "failed 0" in run.screen[row]
    assert re.search(r"elapsed 0:00:0[2-9]", run.screen[row]), run.screen[row]
    assert re.search(r"\d+\.\d KiB/s", run.screen[row]), run.screen[row]
    assert "sync: ok: licenses paged 8 (8 new)" in run.screen[run.rows_with("licenses paged")[0]]
    # the database and storage in use head the display; the summary follows it on stdout
    [where] = run.rows_with("database SQLite file")
    assert str(slow_syncd.root) in run.screen[where] and where < row
    [summary] = run.rows_with('"downloaded": 8')
    assert summary > row
    assert len(slow_syncd.stored_files()) == 8


def test_a_warning_during_the_run_is_printed_above_the_display_whole(slow_syncd):
    # once the display shows, the next file download is answered 503: a retry warning mid-run
    # (four files are fetched at a time, two seconds each; the redownload URLs were all asked
    # for ahead of the transfers, so the files' own requests are what is still to come)
    def fault() -> None:
        slow_syncd.sim.add_fault("GET", r"^/files/", status=503, times=1)

    run = on_terminal(
        slow_syncd, "sync", "--media", "images", "--json", once=(rb"files 0/8", fault)
    )
    # it came while the display showed: between two draws of it
    before, _, after = run.raw.partition(b"transfer.retry")
    assert b"files 0/8" in before and b"files " in after
    assert run.returncode == 0, run.screen
    [warning] = run.rows_with("transfer.retry")
    [display] = run.rows_with("licenses paged")
    assert warning < display - 1  # above the display and its first line
    # the line is longer than the terminal is wide: the terminal wraps it, nothing cuts it
    line = run.logical_line(warning)
    assert re.match(
        r"\S+Z \[warning +\] transfer\.retry +attempt=1 error='HTTP 503' license_id=\w+ "
        r"resume_from=None stream=images wait_s=\d+\.\d+",
        line,
    ), line
    assert len(run.rows_with("transfer.retry")) == 1 and len(run.rows_with("files ")) == 1
    # while it showed, info lines were hidden
    assert b"file.stored" not in run.raw and b"page.fetched" not in run.raw


def test_verbose_brings_the_info_lines_back_above_the_display(slow_syncd):
    run = on_terminal(slow_syncd, "-v", "sync", "--media", "images", "--json")
    assert run.returncode == 0, run.screen
    stored = run.rows_with("file.stored")
    [display] = run.rows_with("licenses paged")
    assert stored and max(stored) < display
    assert len(files_counts(run.raw)) >= 2


def test_no_progress_on_a_terminal_shows_no_display_but_the_log_lines(slow_syncd):
    run = on_terminal(slow_syncd, "sync", "--media", "images", "--json", "--no-progress")
    assert run.returncode == 0, run.screen
    assert b"licenses paged" not in run.raw and not files_counts(run.raw)
    assert b"\x1b[?25l" not in run.raw  # rich hides the cursor while a display shows
    assert len(run.rows_with("file.stored")) == 8


def test_verify_shows_its_own_display_on_a_terminal(slow_syncd):
    assert slow_syncd.sync("--media", "images").returncode == 0
    run = on_terminal(slow_syncd, "verify", "--full", "--json")
    assert run.returncode == 0, run.screen
    [row] = run.rows_with("files ")
    assert "files 8/8" in run.screen[row] and "hashed 2.0 MiB of 2.0 MiB" in run.screen[row]
    assert "problems 0" in run.screen[row]
    assert len(run.rows_with("verify: done")) == 1


# --- off a terminal ---------------------------------------------------------------------------


def test_off_a_terminal_nothing_shows_progress_unless_stats_asks(slow_syncd):
    done = slow_syncd.run("sync", "--json", "--media", "images")  # stderr is a pipe
    assert done.returncode == 0, done.stderr
    assert "licenses paged" not in done.stderr and "\r" not in done.stderr
    events = [json.loads(line)["event"] for line in done.stderr.splitlines()]
    assert "file.stored" in events and "progress" not in events


def test_stats_logs_a_progress_event_each_period_and_one_at_the_end(slow_syncd):
    done = slow_syncd.sync("--media", "images", "--stats", "1s")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines()]
    progress = [event for event in events if event["event"] == "progress"]
    assert len(progress) >= 3, progress  # a run of about 4 s
    assert [event["files_done"] for event in progress] == sorted(
        event["files_done"] for event in progress
    )
    assert progress[-1]["final"] is True and progress[-1]["files_done"] == 8
    assert progress[-1]["files_total"] == 8 and progress[-1]["bytes_done"] == 8 * 256 * 1024
    assert progress[-1]["phase"] == "ok" and progress[-1]["failed"] == 0
    assert any(0 < event["files_done"] < 8 for event in progress[:-1])


def test_quiet_logs_warnings_only_and_log_level_debug_shows_more(slow_syncd):
    slow_syncd.sim.add_fault("POST", r"/licenses/[^/]+/downloads$", status=503, times=1)
    quiet = slow_syncd.sync("--media", "images", "-q")
    assert quiet.returncode == 0, quiet.stderr
    levels = {json.loads(line)["level"] for line in quiet.stderr.splitlines()}
    assert levels == {"warning"}
    again = Syncd(slow_syncd.home / "again", slow_syncd.sim)
    (slow_syncd.home / "again").mkdir()
    loud = again.sync("--media", "images", "--log-level", "debug")
    levels = {json.loads(line)["level"] for line in loud.stderr.splitlines()}
    assert {"debug", "info"} <= levels


def test_verbose_and_quiet_together_are_a_usage_error(syncd):
    done = syncd.run("sync", "-v", "-q")
    assert done.returncode == 2
    assert "usage: syncd sync" in done.stderr
    assert "-v/--verbose and -q/--quiet cannot be used together" in done.stderr


def test_a_bad_stats_period_names_the_value(syncd):
    done = syncd.run("sync", "--stats", "often")
    assert done.returncode == 2
    assert "usage: syncd sync" in done.stderr and "'often'" in done.stderr


# --- the counters and their text --------------------------------------------------------------


def test_the_rate_is_over_the_last_seconds_and_the_eta_follows_the_files_left():
    now = FakeClock()
    meter = Meter(now=now)
    summary = Summary(licenses_seen=10)
    meter.show(summary, 0)
    assert meter.snapshot()["files_total"] is None and meter.snapshot()["eta_s"] is None
    meter.fetching(10)
    meter.show(summary, 10)
    assert meter.snapshot()["bytes_per_s"] is None  # one sample: no rate yet
    for _ in range(20):
        now.now += 1
        meter.add_bytes(1_000_000)
    summary.downloaded = 4
    meter.show(summary, 6)
    state = meter.snapshot()
    assert state["bytes_per_s"] == pytest.approx(1_000_000, rel=0.01)
    assert state["files_done"] == 4 and state["files_total"] == 10
    assert state["eta_s"] == pytest.approx(20 / 4 * 6)  # 20 s for 4 files, 6 to go
    now.now += 10  # nothing for ten seconds: the rate falls to the recent past
    assert meter.snapshot()["bytes_per_s"] < 400_000
    meter.show(summary, 0)
    assert meter.snapshot()["eta_s"] == 0


def test_verify_eta_is_from_the_bytes_left_to_hash():
    now = FakeClock()
    meter = Meter("verify", now=now)
    meter.checking(4, 8_000_000)
    meter.snapshot()
    now.now += 2
    meter.add_bytes(2_000_000)
    meter.checked(2_000_000, problem=True)
    state = meter.snapshot()
    assert state["files_checked"] == 1 and state["problems"] == 1
    assert state["eta_s"] == pytest.approx(6_000_000 / 1_000_000)


def test_stats_log_stops_and_logs_the_final_state(capsys):
    from syncd import logs

    logs.configure("json")
    stats = StatsLog(3600)
    stats.start()
    stats.show(Summary(licenses_seen=3, downloaded=2), 0)
    stats.done("ok")
    [line] = capsys.readouterr().err.splitlines()
    event = json.loads(line)
    assert event["event"] == "progress" and event["final"] is True
    assert event["files_done"] == 2 and event["phase"] == "ok"


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (5 * 1024**3 // 2, "2.5 GiB")],
)
def test_human_size_as_the_display_shows_it(count, text):
    assert human_size(count) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "-:--:--"), (0, "0:00:00"), (59.6, "0:01:00"), (3725, "1:02:05")]
)
def test_clock(seconds, text):
    assert clock(seconds) == text
