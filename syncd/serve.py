"""``syncd serve``: the daemon. A scheduler runs the jobs of the ``[jobs]`` table on their
schedules until SIGTERM or SIGINT (CONTRACT sections 1 and 6).

- **One job at a time.** Every job writes to the same storage under its lease, so the jobs share
  one worker: a job due while another runs waits for it (``coalesce``: many missed runs are one
  run), and a job due while its own previous run still waits is skipped (``max_instances=1``,
  counted as ``skipped``). A ``sync`` or ``backfill`` of another process holding the storage's
  lease makes a job skip that turn (the lease says busy: exit 75 for them, ``skipped`` here).
- **When.** ``catch_up`` runs once at start (a daemon started after downtime catches up at
  once), then on its schedule; the others first run when their schedule says. A job's misfire
  grace is its period. Interval schedules get a little jitter (syncd.schedule).
- **Stopping.** SIGTERM or SIGINT: nothing new starts; the running job is told to drain (no new
  page, no new file) and its files in flight get ``serve.grace_s`` seconds; whatever is still
  running then is cut (partial data discarded, never under a final key); exit 0.
- **SIGHUP** reads the configuration again: the jobs' schedules and everything a job reads at
  its start (API, database, storage, sync keys) take effect from the next run. A configuration
  that does not load is refused with one error line, and the one in force is kept.
  ``serve.metrics_address`` is bound once: a change needs a restart (logged).
- **systemd** (``NOTIFY_SOCKET``): ``READY=1`` after the migrations (``EXTEND_TIMEOUT_USEC``
  while they run), ``STATUS=`` lines as jobs start and end, ``WATCHDOG=1`` at half of
  ``WATCHDOG_USEC`` from the scheduler's own loop, ``STOPPING=1``.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

import structlog
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from syncd import logs, notify
from syncd.config import Config, Schedule, require_token
from syncd.db import connect, upgrade
from syncd.db.engine import check_url
from syncd.errors import ConfigError, StorageBusy, SyncdError
from syncd.metrics import JOBS, Metrics, MetricsServer, start_metrics_server
from syncd.schedule import period_s, trigger_for
from syncd.storage import open_storage

log = structlog.get_logger("syncd.serve")

UTC = timezone.utc
MIGRATION_TIMEOUT_USEC = 5 * 60 * 1_000_000  # asked of systemd while the migrations run
CUT_WAIT_S = 30.0  # after the grace: how long a cut job may take to let go of its sockets
TICK_S = 0.5  # the main loop's wake-up: signals, SIGHUP


@dataclass
class JobRun:
    """What a job's run reports to the daemon."""

    ok: bool
    detail: str
    skipped: bool = False  # it did not run: another process held the storage's lease


class Controls:
    """The events the daemon hands to the job running now."""

    def __init__(self) -> None:
        self.drain = threading.Event()  # start nothing new, finish what is in flight
        self.stop = threading.Event()  # cut now


JobRunner = Callable[[Config, Controls, Metrics], JobRun]


def run_catch_up(config: Config, controls: Controls, metrics: Metrics) -> JobRun:
    from syncd.sync import SyncRun

    # with an updates job scheduled, that job runs the /updated streams
    return _run_like_sync(SyncRun, config, controls, metrics, updates=config.jobs.updates.off)


def run_updates(config: Config, controls: Controls, metrics: Metrics) -> JobRun:
    from syncd.updates import UpdatesRun

    if not config.updates.enabled:
        return JobRun(True, "updates.enabled is off: nothing to do")
    return _run_like_sync(UpdatesRun, config, controls, metrics)


def run_backfill(config: Config, controls: Controls, metrics: Metrics) -> JobRun:
    from syncd.backfill import BackfillRun

    return _run_like_sync(BackfillRun, config, controls, metrics)


def _run_like_sync(
    kind: Any, config: Config, controls: Controls, metrics: Metrics, **options: Any
) -> JobRun:
    """One run of a SyncRun kind over ``sync.media``, stopped by serve's controls; skipped
    when another process holds the storage."""
    run = kind(
        config,
        media=config.sync.media,
        stop=controls.stop,
        drain=controls.drain,
        on_request=metrics.record_api_request,
        **options,
    )
    try:
        result = run.execute()
    except StorageBusy as exc:
        return JobRun(False, str(exc), skipped=True)
    return _sync_like(result, metrics)


def _sync_like(result: Any, metrics: Metrics) -> JobRun:
    summary = result.summary
    metrics.record_run(summary.as_json(), result.by_media)
    detail = (
        f"{summary.downloaded} downloaded, {summary.new_licenses} new licenses, "
        f"{summary.failed} failed (exit {result.exit_code})"
    )
    if result.fatal is not None:
        detail = f"{logs.redact(str(result.fatal))} (exit {result.exit_code})"
    elif result.stream_errors or result.refused:
        streams = ", ".join(sorted({**result.stream_errors, **result.refused}))
        detail += f"; streams failed: {streams}"
    return JobRun(result.exit_code == 0 and not result.interrupted, detail)


def run_verify(config: Config, controls: Controls, metrics: Metrics) -> JobRun:
    """The scheduled verify repairs: missing and corrupt files are queued for the next
    catch-up, leftovers of killed runs removed (CONTRACT 1, ``verify --repair``)."""
    from syncd.verify import Verify

    job = Verify(config, repair=True, stop=controls.drain)
    try:
        report = job.execute()
    except StorageBusy as exc:
        return JobRun(False, str(exc), skipped=True)
    detail = (
        f"{report.checked} checked, {report.missing} missing, {report.corrupt} corrupt, "
        f"{report.queued} queued again, {report.leftovers_removed} leftovers removed"
    )
    if config.sync.details and not job.interrupted:
        aged = _age_details(config)
        detail += f", {aged} assets' details to be fetched again"
    return JobRun(not report.wrong and not job.interrupted, detail)


NO_UPDATE_FEED = ("audio", "editorial/videos")  # their details are refreshed by verify


def _age_details(config: Config) -> int:
    """Media without an /updated feed is kept current by the verify job: a thirtieth of its
    assets (the least recently fetched) are fetched again by the next catch-up."""
    from sqlalchemy.orm import Session

    from syncd.db import connect, ledger

    engine = connect(config.database.url)
    try:
        with Session(engine) as session:
            aged = ledger.age_details(
                session, [m for m in NO_UPDATE_FEED if m in config.sync.media]
            )
            session.commit()
    finally:
        engine.dispose()
    return aged


RUNNERS: dict[str, JobRunner] = {
    "catch_up": run_catch_up,
    "verify": run_verify,
    "backfill": run_backfill,
    "updates": run_updates,
}


def available_jobs() -> dict[str, JobRunner]:
    """The jobs this version can run."""
    return dict(RUNNERS)


class Daemon:
    """``serve``: the scheduler, the jobs, the metrics server, signals and systemd."""

    def __init__(
        self,
        config: Config,
        reload: Callable[[], Config],
        runners: dict[str, JobRunner] | None = None,
    ):
        self.config = config
        self._reload_config = reload
        self.runners = available_jobs() if runners is None else runners
        self.metrics = Metrics()
        self.server: MetricsServer | None = None
        self.scheduler: BackgroundScheduler | None = None
        self._stopping = threading.Event()
        self._hangup = threading.Event()
        self._lock = threading.Lock()
        self._current: tuple[str, Controls] | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._schedules: dict[str, Schedule] = {}

    # --- start-up -----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Every check that can fail with exit 2 or 4 before anything is scheduled: the token,
        the database URL, the storage (writable), the migrations, the metrics address."""
        config = self.config
        require_token(config)
        check_url(config.database.url)
        storage = open_storage(config.storage, config.sync.concurrency)
        storage.check_writable()
        notify.extend_timeout(MIGRATION_TIMEOUT_USEC)
        notify.status("applying database migrations")
        engine = connect(config.database.url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        self.server = start_metrics_server(config.serve.metrics_address, self.metrics)

    def run(self) -> int:
        # the signals are ours before start-up's first write (the storage probe): a SIGTERM
        # while migrations run lets them finish, then serve exits 0 without scheduling
        previous = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            self.prepare()
            where = logs.announce_config(self.config, "serve")
            if self._stopping.is_set():
                return 0
            self._start_scheduler()
            listening = "off" if self.server is None else "{}:{}".format(*self.server.address)
            log.info("serve.ready", jobs=sorted(self._schedules), metrics=listening)
            notify.ready(f"ready: {where}; jobs {', '.join(sorted(self._schedules)) or 'none'}")
            while not self._stopping.is_set():
                self._stopping.wait(TICK_S)
                if self._hangup.is_set():
                    self._hangup.clear()
                    self.reload()
            self._shut_down()
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
            if self.server is not None:
                self.server.close()
        return 0

    def _on_signal(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGHUP:
            self._hangup.set()
        else:
            self._stopping.set()

    def _start_scheduler(self) -> None:
        scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={
                "default": ThreadPoolExecutor(1),  # the jobs: one at a time
                "watchdog": ThreadPoolExecutor(1),
            },
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        scheduler.add_listener(self._on_max_instances, EVENT_JOB_MAX_INSTANCES)
        self.scheduler = scheduler
        self._schedule_jobs(self.config, first=True)
        interval = notify.watchdog_interval()
        if interval is not None:
            notify.watchdog()
            scheduler.add_job(
                notify.watchdog,
                "interval",
                seconds=interval,
                id="watchdog",
                executor="watchdog",
                misfire_grace_time=None,
            )
        scheduler.start()

    def _schedule_jobs(self, config: Config, first: bool = False) -> None:
        assert self.scheduler is not None
        now = datetime.now(UTC)
        for name in JOBS:
            schedule: Schedule = getattr(config.jobs, name)
            if name not in self.runners:
                if not schedule.off and first:
                    log.info("job.not_available", job=name, reason="not built in this version")
                continue
            if not first and self._schedules.get(name) == schedule:
                continue
            if self.scheduler.get_job(name) is not None:
                self.scheduler.remove_job(name)
            self._schedules.pop(name, None)
            trigger = trigger_for(schedule, now)
            if trigger is None:
                log.info("job.off", job=name)
                continue
            period = period_s(schedule, now) or 60.0
            run_now = first and name == "catch_up"
            job = self.scheduler.add_job(
                self._run_job,
                trigger,
                args=(name,),
                id=name,
                name=name,
                misfire_grace_time=max(1, int(period)),
                next_run_time=now if run_now else undefined_next(),
            )
            self._schedules[name] = schedule
            due = now if run_now else getattr(job, "next_run_time", None)
            due = due or trigger.get_next_fire_time(None, now)
            self.metrics.schedule_job(name, period, due.timestamp() if due else time.time())
            log.info(
                "job.scheduled",
                job=name,
                schedule=schedule.cron or f"every {schedule.interval_s} s",
                next_run=due.isoformat() if due else None,
            )

    def _on_max_instances(self, event: JobExecutionEvent) -> None:
        if event.job_id in JOBS:
            self.metrics.record_job(event.job_id, "skipped")
            log.info("job.skipped", job=event.job_id, reason="its previous run is still going")

    # --- a job's run --------------------------------------------------------------------------

    def _run_job(self, name: str) -> None:
        controls = Controls()
        with self._lock:
            if self._stopping.is_set():
                return  # queued behind the job that was running when the stop came
            self._current = (name, controls)
            self._idle.clear()
        config = self.config
        started = time.monotonic()
        notify.status(f"running {name}")
        log.info("job.started", job=name)
        try:
            outcome = self.runners[name](config, controls, self.metrics)
        except SyncdError as exc:
            outcome = JobRun(False, logs.redact(str(exc)))
        except Exception as exc:  # a bug fails the job's run, never the daemon
            log.exception("job.crashed", job=name)
            outcome = JobRun(False, f"internal error: {logs.redact(repr(exc))}")
        finally:
            with self._lock:
                self._current = None
                self._idle.set()
        duration = time.monotonic() - started
        if controls.drain.is_set():
            log.info("job.stopped", job=name, detail=outcome.detail, duration_s=round(duration, 3))
            return  # a stop is neither a success nor a failure of the job
        if outcome.skipped:
            self.metrics.record_job(name, "skipped")
            log.info("job.skipped", job=name, reason=outcome.detail)
        else:
            result = "success" if outcome.ok else "failure"
            self.metrics.record_job(name, result, duration)
            (log.info if outcome.ok else log.error)(
                "job.finished",
                job=name,
                outcome=result,
                detail=outcome.detail,
                duration_s=round(duration, 3),
            )
        notify.status(f"idle; last {name}: {'ok' if outcome.ok else 'failed'} ({outcome.detail})")

    # --- SIGHUP, SIGTERM ----------------------------------------------------------------------

    def reload(self) -> None:
        try:
            config = self._reload_config()
            require_token(config)
        except (ConfigError, SyncdError) as exc:
            log.error("config.reload_refused", error=logs.redact(str(exc)), kept="the old one")
            notify.status(f"configuration reload refused: {logs.redact(str(exc))}")
            return
        if config.serve.metrics_address != self.config.serve.metrics_address:
            log.warning("config.needs_restart", key="serve.metrics_address", kept="the old address")
            kept = replace(config.serve, metrics_address=self.config.serve.metrics_address)
            config = replace(config, serve=kept)
        self.config = config
        self._schedule_jobs(config)
        log.info("config.reloaded", source=config.source)
        notify.status("configuration reloaded")

    def _shut_down(self) -> None:
        notify.stopping()
        notify.status("stopping")
        self.metrics.running = False
        assert self.scheduler is not None
        self.scheduler.pause()
        with self._lock:
            current = self._current
        if current is not None:
            name, controls = current
            grace = self.config.serve.grace_s
            log.info("serve.stopping", job=name, grace_s=grace)
            controls.drain.set()
            if not self._idle.wait(grace):
                log.warning("serve.grace_over", job=name, detail="cutting what is in flight")
                controls.stop.set()
                self._idle.wait(CUT_WAIT_S)
        else:
            log.info("serve.stopping", job=None)
        self.scheduler.shutdown(wait=False)
        log.info("serve.stopped")


def undefined_next() -> Any:
    """APScheduler's "let the trigger decide" for ``next_run_time``."""
    from apscheduler.util import undefined

    return undefined
