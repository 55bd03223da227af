"""Metrics and health (CONTRACT section 6): what ``serve`` answers on ``/metrics`` and
``/healthz``, and what ``sync``/``backfill --metrics-file`` write for the node exporter.

Each ``Metrics`` has its own CollectorRegistry (never prometheus_client's global one), so two
in one process (tests, a run inside ``serve``) never mix. Every counter is there at 0 from the
start: the labelled ones have a child for every media type, and for every job and outcome;
``syncd_api_requests_total`` gets a child per status code as codes come (``error`` when nothing
answered). No label carries an id.

Health is a pure function (``evaluate_health``) over each enabled job's period, first due
time, last outcome and last success; ``Metrics`` keeps those as jobs are scheduled and run.
"""

from __future__ import annotations

import copy
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socket import AF_INET6

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric

from syncd.config import MEDIA_TYPES
from syncd.errors import ConfigError

log = structlog.get_logger("syncd.metrics")

JOBS = ("catch_up", "updates", "verify", "backfill")
# A run that finished (success/failure), or one that did not start because the previous run
# of the job was still going (skipped).
OUTCOMES = ("success", "failure", "skipped")

# Per media type: summary key (CONTRACT section 2) -> counter name (without _total).
MEDIA_COUNTERS = {
    "licenses_seen": (
        "syncd_licenses_seen",
        "Distinct licenses read from the license lists",
    ),
    "downloaded": (
        "syncd_files_downloaded",
        "Files fetched by redownload (relicensed files count in syncd_relicensed_total)",
    ),
    "bytes_downloaded": (
        "syncd_bytes_downloaded",
        "Bytes stored, relicensed files included",
    ),
    "failed": (
        "syncd_licenses_failed",
        "Licenses that failed after their retries (they stay queued)",
    ),
    "unavailable": (
        "syncd_licenses_unavailable",
        "Licenses the account cannot fetch (reason recorded)",
    ),
    "relicensed": (
        "syncd_relicensed",
        "Files fetched through a new license",
    ),
}


@dataclass(frozen=True)
class JobHealth:
    """What health needs of one enabled job. Times are Unix seconds."""

    name: str
    period_s: float
    first_due: float  # when its first run is due
    last_outcome: str | None = None  # of its last finished run: "success" or "failure"
    last_success: float | None = None


@dataclass(frozen=True)
class Health:
    status: int  # 200 or 503
    body: str


def deadline(job: JobHealth) -> float:
    """The moment past which ``job`` is overdue: twice its period after its last success, or
    after its first due time while it has none."""
    since = job.last_success if job.last_success is not None else job.first_due
    return since + 2 * job.period_s


def evaluate_health(jobs: Iterable[JobHealth], now: float, running: bool = True) -> Health:
    """200 while the scheduler runs and every enabled job's last run succeeded (within twice
    its period), or its first run is not yet due; else 503 naming each job that failed or is
    overdue."""
    jobs = sorted(jobs, key=lambda job: job.name)
    problems = [] if running else ["scheduler: not running"]
    for job in jobs:
        if job.last_outcome == "failure":
            problems.append(f"{job.name}: last run failed")
        elif now > deadline(job):
            since = job.last_success if job.last_success is not None else job.first_due
            what = "no success" if job.last_success is None else "no success since"
            problems.append(
                f"{job.name}: {what} in {_human(now - since)} "
                f"(twice its period is {_human(2 * job.period_s)})"
            )
    if problems:
        return Health(503, "unhealthy\n" + "".join(f"{line}\n" for line in problems))
    names = ", ".join(job.name for job in jobs) or "no jobs enabled"
    return Health(200, f"ok: {names}\n")


def _human(seconds: float) -> str:
    """``90061`` -> ``1d1h``: the two largest units, enough to read an overdue job by."""
    seconds = int(seconds)
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for index, (unit, size) in enumerate(units[:-1]):
        if seconds >= size:
            whole, rest = divmod(seconds, size)
            small_unit, small_size = units[index + 1]
            return f"{whole}{unit}" + (
                f"{rest // small_size}{small_unit}" if rest >= small_size else ""
            )
    return f"{seconds}s"


class Metrics:
    """syncd's metrics in their own registry, and the state health is judged on."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self._media = {
            key: Counter(name, doc, ["media_type"], registry=reg)
            for key, (name, doc) in MEDIA_COUNTERS.items()
        }
        self.credits_spent = Counter(
            "syncd_credits_spent", "Credits charged for relicensing", registry=reg
        )
        self.api_requests = Counter(
            "syncd_api_requests",
            "Requests sent to the API base URL, retries included, by HTTP status "
            "(error: no answer)",
            ["code"],
            registry=reg,
        )
        self.job_runs = Counter(
            "syncd_job_runs", "Job runs by outcome", ["job", "outcome"], registry=reg
        )
        self.job_last_success = Gauge(
            "syncd_job_last_success_timestamp_seconds",
            "Unix time the job last finished successfully (0: not yet)",
            ["job"],
            registry=reg,
        )
        self.job_duration = Gauge(
            "syncd_job_duration_seconds",
            "How long the job's last finished run took",
            ["job"],
            registry=reg,
        )
        self.job_deadline = Gauge(
            "syncd_job_deadline_timestamp_seconds",
            "Unix time after which the job is overdue without a new success (twice its "
            "period after its last success or first due time; 0: not scheduled)",
            ["job"],
            registry=reg,
        )
        for counter in self._media.values():
            for media_type in MEDIA_TYPES:
                counter.labels(media_type=media_type)
        for job in JOBS:
            for outcome in OUTCOMES:
                self.job_runs.labels(job=job, outcome=outcome)
            for gauge in (self.job_last_success, self.job_duration, self.job_deadline):
                gauge.labels(job=job)
        self._lock = threading.Lock()
        self._jobs: dict[str, JobHealth] = {}
        self.running = True

    # --- recording ----------------------------------------------------------------------

    def record_run(
        self, summary: Mapping[str, float], by_media: Mapping[str, Mapping[str, float]]
    ) -> None:
        """Add one run: ``summary`` is the run summary (CONTRACT section 2; its
        ``credits_spent`` is counted), ``by_media`` the same counts per media type
        (``{"images": {"licenses_seen": 3, "downloaded": 2, ...}}``; a missing key is 0).
        API requests are not taken from the summary: ``record_api_request`` counts each."""
        counts = {}
        for media_type, values in by_media.items():
            if media_type not in MEDIA_TYPES:
                raise ValueError(f"unknown media type {media_type!r}")
            for key, value in values.items():
                if key in MEDIA_COUNTERS:
                    counts[key, media_type] = _amount(key, value)
        credits = _amount("credits_spent", summary.get("credits_spent", 0))
        for (key, media_type), value in counts.items():
            self._media[key].labels(media_type=media_type).inc(value)
        self.credits_spent.inc(credits)

    def record_api_request(self, status: int | None) -> None:
        """One request to the API: its HTTP status, or None when nothing answered."""
        if status is None:
            code = "error"
        elif isinstance(status, int) and 100 <= status <= 599:
            code = str(status)
        else:
            raise ValueError(f"not an HTTP status: {status!r}")
        self.api_requests.labels(code=code).inc()

    def schedule_job(self, job: str, period_s: float, first_due: float) -> None:
        """An enabled job: health expects its first success by twice ``period_s`` after
        ``first_due`` (Unix seconds). A job never scheduled is off, and not judged."""
        _check_job(job)
        if period_s <= 0:
            raise ValueError(f"a job's period must be positive, not {period_s}")
        with self._lock:
            state = self._jobs.get(job)
            if state is None:
                state = JobHealth(job, float(period_s), float(first_due))
            else:
                state = replace(state, period_s=float(period_s), first_due=float(first_due))
            self._jobs[job] = state
            self.job_deadline.labels(job=job).set(deadline(state))

    def record_job(
        self, job: str, outcome: str, duration_s: float = 0.0, finished_at: float | None = None
    ) -> None:
        """One run of ``job``: ``success`` or ``failure`` (with its duration; ``finished_at``
        in Unix seconds, default now), or ``skipped`` (counted, nothing else changes)."""
        _check_job(job)
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown job outcome {outcome!r} (known: {', '.join(OUTCOMES)})")
        self.job_runs.labels(job=job, outcome=outcome).inc()
        if outcome == "skipped":
            return
        finished_at = time.time() if finished_at is None else finished_at
        self.job_duration.labels(job=job).set(duration_s)
        if outcome == "success":
            self.job_last_success.labels(job=job).set(finished_at)
        with self._lock:
            state = self._jobs.get(job)
            if state is None:
                return
            state = replace(
                state,
                last_outcome=outcome,
                last_success=finished_at if outcome == "success" else state.last_success,
            )
            self._jobs[job] = state
            self.job_deadline.labels(job=job).set(deadline(state))

    # --- reading ------------------------------------------------------------------------

    def health(self, now: float | None = None) -> Health:
        with self._lock:
            jobs = list(self._jobs.values())
        return evaluate_health(jobs, time.time() if now is None else now, self.running)

    def exposition(self, labels: Mapping[str, str] | None = None) -> bytes:
        """The Prometheus text format, without prometheus_client's ``_created`` series;
        ``labels`` are added to every sample."""
        return generate_latest(_Exposed(self.registry, dict(labels or {})))

    def write_textfile(
        self, path: str | os.PathLike[str], labels: Mapping[str, str] | None = None
    ) -> None:
        """The exposition into ``path`` for the node exporter's textfile collector: written to
        a hidden temporary name in the same folder (the collector reads ``*.prom`` only),
        flushed, then renamed over ``path``, so the collector never reads half a file.

        The collector refuses a series that two files both hold: when ``sync`` and
        ``backfill`` each write a file, give each its own ``labels`` (``{"command": "sync"}``)."""
        target = Path(path)
        fd, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
        )
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(self.exposition(labels))
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class _Exposed:
    """A registry's metrics as exposed: no ``_created`` series, ``labels`` on every sample."""

    def __init__(self, registry: CollectorRegistry, labels: dict[str, str]):
        self._registry = registry
        self._labels = labels

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            exposed = copy.copy(family)
            exposed.samples = [
                sample._replace(labels={**sample.labels, **self._labels})
                for sample in family.samples
                if not sample.name.endswith("_created")
            ]
            yield exposed


def _check_job(job: str) -> None:
    if job not in JOBS:
        raise ValueError(f"unknown job {job!r} (known: {', '.join(JOBS)})")


def _amount(key: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{key} must be a count of at least 0, not {value!r}")
    return value


# --- the HTTP server ------------------------------------------------------------------------


class MetricsServer:
    """``/metrics`` and ``/healthz`` on one address, served from a background thread."""

    def __init__(self, address: tuple[str, int], metrics: Metrics):
        host, port = address
        handler = _handler(metrics.exposition, metrics.health)
        server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
        try:
            self._server = server_class((host, port), handler)
        except OSError as exc:
            raise ConfigError(
                "serve.metrics_address", f"cannot listen on {_join(host, port)}: {exc.strerror}"
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="syncd-metrics", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> MetricsServer:
        self._thread.start()
        log.info("metrics.listening", address=_join(*self.address))
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


def start_metrics_server(address: tuple[str, int] | None, metrics: Metrics) -> MetricsServer | None:
    """The server on ``serve.metrics_address``, started; None when that is ``off``."""
    if address is None:
        return None
    return MetricsServer(address, metrics).start()


class _IPv6Server(ThreadingHTTPServer):
    address_family = AF_INET6


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _handler(exposition: Callable[[], bytes], health: Callable[[], Health]) -> type:
    class Handler(BaseHTTPRequestHandler):
        server_version = "syncd"

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, exposition(), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                verdict = health()
                self._answer(verdict.status, verdict.body.encode(), "text/plain; charset=utf-8")
            else:
                self._answer(404, b"not found: try /metrics or /healthz\n", "text/plain")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("metrics.request", line=format % args)

    return Handler
