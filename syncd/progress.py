"""What a long run shows while it works.

Three displays read the same counters (a :class:`Meter`):

- :class:`LiveDisplay`, on a terminal: an in-place block drawn by rich below the log lines
  (rich prints whatever reaches stderr above it, whole);
- :class:`StatsLog`, off a terminal with ``--stats DURATION``: a ``progress`` log event every
  DURATION, for journald and cron mail;
- :class:`Meter` alone: nothing shown (``--no-progress``, a pipe without ``--stats``).

The run only tells the meter what happened (``paging``, ``fetching``, ``add_bytes``, ``show``);
the display thread reads it, so a slow terminal never slows a transfer.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, TextIO

import structlog

from syncd.status import human_size

if TYPE_CHECKING:
    from syncd.summary import Summary

log = structlog.get_logger("syncd")

RATE_WINDOW_S = 5.0  # the rate shown is over the last few seconds, not the whole run


def clock(seconds: float | None) -> str:
    """``h:mm:ss``; ``-:--:--`` when not known."""
    if seconds is None or seconds < 0 or seconds != seconds:
        return "-:--:--"
    whole = int(seconds + 0.5)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class Meter:
    """Counters the run updates (from any thread) and a display reads."""

    def __init__(self, command: str = "sync", now=time.monotonic) -> None:
        self.command = command
        self._now = now
        self.started = now()
        self.phase = "starting"
        self.summary: Summary | None = None
        self.files_total: int | None = None  # fetches planned, once paging is over
        self.files_left = 0
        self.bytes_done = 0
        self.bytes_total: int | None = None  # verify knows it; a sync learns sizes as it goes
        self.files_done = 0  # verify's count; a sync's comes from its summary
        self.problems = 0
        self.where = ""  # the database and storage in use, for the display's first line
        self._fetch_started: float | None = None
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, int]] = deque()

    # --- told by the run ----------------------------------------------------------------------

    def paging(self, media_type: str) -> None:
        self.phase = f"paging {media_type}"

    def fetching(self, files: int) -> None:
        """``files`` to fetch in all so far (the queue comes in batches: each adds to it)."""
        if self.phase != "fetching":
            self._fetch_started = self._now()
        self.phase = "fetching"
        self.files_total = files
        self.files_left = files

    def add_bytes(self, count: int) -> None:
        with self._lock:
            self.bytes_done += count

    def show(self, summary: Summary, files_left: int) -> None:
        self.summary = summary
        self.files_left = files_left

    def checking(self, files: int, size: int) -> None:
        """verify: what it is about to check."""
        self.phase = "checking"
        self.files_total, self.bytes_total = files, size
        self._fetch_started = self._now()

    def checked(self, _size: int, problem: bool = False) -> None:
        self.files_done += 1
        self.problems += problem

    def start(self) -> None:
        """Begins showing (a display's own start); the plain meter shows nothing."""

    def done(self, outcome: str = "done") -> None:
        """Stops showing, leaving the last state (with the run's outcome) on the screen."""
        self.phase = outcome

    # --- read by a display --------------------------------------------------------------------

    def rate(self) -> float | None:
        """Bytes per second over the last RATE_WINDOW_S; None before two samples."""
        now = self._now()
        samples = self._samples
        samples.append((now, self.bytes_done))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW_S:
            samples.popleft()
        first_at, first_bytes = samples[0]
        if now - first_at < 0.5:
            return None
        return (self.bytes_done - first_bytes) / (now - first_at)

    def snapshot(self) -> dict[str, Any]:
        """What the displays show, as numbers (the ``progress`` log event's fields)."""
        now = self._now()
        rate = self.rate()
        state: dict[str, Any] = {
            "phase": self.phase,
            "elapsed_s": round(now - self.started, 1),
            "bytes_done": self.bytes_done,
            "bytes_per_s": None if rate is None else int(rate),
        }
        summary = self.summary
        if self.command == "verify":
            done, total = self.files_done, self.files_total
            state.update(files_checked=done, files_total=total, problems=self.problems)
            state["bytes_total"] = self.bytes_total
            left = None if total is None else max(total - done, 0)
        else:
            done = summary.downloaded + summary.relicensed if summary else 0
            failed = summary.failed if summary else 0
            state.update(
                licenses_seen=summary.licenses_seen if summary else 0,
                new_licenses=summary.new_licenses if summary else 0,
                files_done=done,
                files_total=self.files_total,
                failed=failed,
                unavailable=summary.unavailable if summary else 0,
            )
            left = None if self.files_total is None else self.files_left
        state["eta_s"] = self._eta(rate, done, left)
        return state

    def _eta(self, rate: float | None, done: int, left: int | None) -> float | None:
        if left is None:
            return None
        if left == 0:
            return 0.0
        if self.bytes_total is not None and rate:
            return max(self.bytes_total - self.bytes_done, 0) / rate
        if not done or self._fetch_started is None:
            return None
        # a sync does not know sizes before it fetches: the files still to come at the pace
        # of those done so far
        return (self._now() - self._fetch_started) / done * left


class LiveDisplay(Meter):
    """An in-place block on a terminal (rich's Live), redrawn four times a second by rich's
    own thread. While it shows, whatever is written to stderr (log lines, warnings) is printed
    above it, whole."""

    def __init__(self, stream: TextIO, command: str = "sync") -> None:
        super().__init__(command)
        from rich.console import Console
        from rich.live import Live

        self._console = Console(file=stream, highlight=False, soft_wrap=True)
        self._live = Live(
            get_renderable=self._render,
            console=self._console,
            refresh_per_second=4,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=True,
        )
        self._showing = False

    def start(self) -> None:
        if not self._showing:
            self._live.start()
            self._showing = True

    def done(self, outcome: str = "done") -> None:
        if self._showing:
            self.phase = outcome
            self._live.refresh()
            self._live.stop()
            self._showing = False

    def _render(self):
        from rich.console import Group, RenderableType
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        state = self.snapshot()
        rate = state["bytes_per_s"]
        speed = "-" if rate is None else f"{human_size(rate)}/s"
        timing = f"{speed}  ETA {clock(state['eta_s'])}  elapsed {clock(state['elapsed_s'])}"
        total = state["files_total"]
        if self.command == "verify":
            done = state["files_checked"]
            head = f"verify: {state['phase']}"
            tail = (
                f"files {done}/{'?' if total is None else total}  "
                f"hashed {human_size(state['bytes_done'])} of "
                f"{human_size(state['bytes_total'] or 0)}  {timing}  "
                f"problems {state['problems']}"
            )
        else:
            done = state["files_done"]
            head = (
                f"sync: {state['phase']}: licenses paged {state['licenses_seen']} "
                f"({state['new_licenses']} new)"
            )
            tail = (
                f"files {done}/{'?' if total is None else total}  "
                f"{human_size(state['bytes_done'])}  {timing}  "
                f"failed {state['failed']}  unavailable {state['unavailable']}"
            )
        bar = ProgressBar(total=float(total or 1), completed=float(done if total else 0), width=24)
        row = Table.grid(padding=(0, 1))
        row.add_row(bar, Text(tail, no_wrap=True, overflow="ellipsis"))
        lines: list[RenderableType] = [Text(head, no_wrap=True, overflow="ellipsis"), row]
        if self.where:
            lines.insert(0, Text(self.where, style="dim", no_wrap=True, overflow="ellipsis"))
        return Group(*lines)


class StatsLog(Meter):
    """Off a terminal: a ``progress`` log event every ``period_s`` seconds while the run
    lasts, and one at its end."""

    def __init__(self, period_s: float, command: str = "sync") -> None:
        super().__init__(command)
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="stats", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            log.info("progress", command=self.command, **self.snapshot())

    def done(self, outcome: str = "done") -> None:
        self.phase = outcome
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            log.info("progress", command=self.command, final=True, **self.snapshot())


def display_for(stream: TextIO, command: str, *, no_progress: bool, stats_s: float | None) -> Meter:
    """The display a command shows: live on a terminal (unless ``--no-progress``), progress
    events with ``--stats`` off one, else none."""
    if stream.isatty() and not no_progress:
        return LiveDisplay(stream, command)
    if stats_s:
        return StatsLog(stats_s, command)
    return Meter(command)
