"""License-to-DAM latency of ``syncd serve``: how long after a license is bought its file and
its sidecar are in storage, and how many API requests per hour that costs.

The simulator runs in a thread of this process on 127.0.0.1, with a small starting history and
an API latency; ``syncd serve`` runs as a real subprocess with ``jobs.catch_up`` on a short
schedule (default ``1m``). Once serve's first catch-up has finished, licenses are added at
random moments over a window; for each, the clock runs from the moment the license is in the
history to the moment its file is under its final key and its ``metadata.json`` lists the
license (polled). Then serve gets SIGTERM and must exit 0. See benchmarks/README.md.

    .venv/bin/python benchmarks/latency.py [--licenses 12] [--minutes 12] [--schedule 1m]
        [--api-latency-ms 100] [--seed N] [--quick] [--keep-logs] [--no-save]
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TOKEN = "bench-token"
LICENSE_STREAMS = ("images", "videos", "audio")  # the streams that can be redownloaded
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "no_proxy")
POLL_S = 0.2
# The starting history, as shares of --history: mostly images, like most customers' accounts.
HISTORY_SHARES = {
    "images": 0.6,
    "videos": 0.2,
    "audio": 0.12,
    "editorial/images": 0.05,
    "editorial/videos": 0.03,
}
COMMERCIAL = "Bynder's Shutterstock sync: about 2 h; Shutterstock's enterprise sync: hourly"


class BenchError(Exception):
    """A problem that ends the benchmark with a clear message (exit 2)."""


# --- serve, the one child ---------------------------------------------------------------------

_children: dict[int, subprocess.Popen[Any]] = {}


def _kill_children() -> None:
    """Ends a child still running (its own process group, by its id)."""
    for proc in list(_children.values()):
        _children.pop(proc.pid, None)
        if proc.poll() is not None:
            continue
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
        proc.wait(10)


atexit.register(_kill_children)


def _on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without proxies (nothing may leave loopback) or SYNCD_* settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in PROXY_VARS
        and not k.startswith("SYNCD_")
        and k not in ("SHUTTERSTOCK_API_TOKEN", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET")
    }
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_duration(text: str) -> int:
    """``20s``, ``1m``, ``2h`` -> seconds (the durations serve's schedules take)."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (20s, 1m, 2h)")
    return int(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]


@dataclass
class LogEvent:
    at: float  # time.monotonic() when this process read the line
    event: dict[str, Any]


class Serve:
    """``syncd serve`` as a subprocess: its JSON log events as they come (each stamped with the
    moment it was read), every line also copied to a file."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path):
        self.log_path = log_path
        self._log: IO[str] = open(log_path, "w")
        self.events: list[LogEvent] = []
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        _children[self.proc.pid] = self.proc
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            at = time.monotonic()
            self._log.write(line)
            self._log.flush()
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                with self._changed:
                    self.events.append(LogEvent(at, event))
                    self._changed.notify_all()

    def jobs(self, name: str, kind: str) -> list[LogEvent]:
        with self._changed:
            return [
                e
                for e in self.events
                if e.event.get("event") == kind and e.event.get("job") == name
            ]

    def wait_for(self, event: str, job: str, count: int, timeout: float) -> LogEvent:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [
                    e
                    for e in self.events
                    if e.event.get("event") == event and e.event.get("job") == job
                ]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise BenchError(
                        f"serve: no {event} of {job} within {timeout:.0f} s "
                        f"(exit {self.proc.poll()}); log:\n{self.tail()}"
                    )
                self._changed.wait(min(left, 0.5))

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"serve exited {self.proc.returncode} early; log:\n{self.tail()}")

    def stop(self, timeout: float) -> tuple[int, float]:
        """SIGTERM; the exit code and the seconds serve took to exit."""
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(
                f"serve did not exit within {timeout:.0f} s of SIGTERM; log:\n{self.tail()}"
            ) from None
        elapsed = time.monotonic() - sent
        self._reader.join(10)
        _children.pop(self.proc.pid, None)
        self._log.close()
        return code, elapsed

    def tail(self, lines: int = 20) -> str:
        try:
            self._log.flush()
        except ValueError:
            pass
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


def process_usage(pid: int) -> dict[str, float | None]:
    """A running process's user + system CPU seconds and its peak RSS (VmHWM) in MB."""
    cpu_s = peak_mb = None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu_s = round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak_mb = round(int(line.split()[1]) / 1024, 1)
    except (OSError, IndexError, ValueError):
        pass
    return {"cpu_s": cpu_s, "peak_rss_mb": peak_mb}


def syncd_command(python: str) -> list[str]:
    return [python, "-m", "syncd", "--log-format", "json", "serve"]


# --- the licenses -----------------------------------------------------------------------------


@dataclass
class Pending:
    index: int
    stream: str
    size: str  # format.size, or "original"
    offset_s: float  # planned moment, seconds after the first catch-up finished
    license_id: str = ""
    media_id: str = ""
    key: str = ""  # the file's final key under the storage root
    file_bytes: int = 0
    licensed_at: float = 0.0  # time.monotonic() once the license is in the history
    licensed_utc: str = ""
    arrived_at: float | None = None  # time.monotonic() when file and sidecar were both seen
    file_seen_at: float | None = None
    sidecar_seen_at: float | None = None

    @property
    def latency_s(self) -> float | None:
        return None if self.arrived_at is None else self.arrived_at - self.licensed_at


def plan_licenses(count: int, window_s: float, rng: random.Random) -> list[Pending]:
    """`count` licenses at moments uniform over the window, the three streams taking turns
    (shuffled), each of a size its stream sells."""
    from syncd.simulator.catalog import KINDS

    streams = [LICENSE_STREAMS[i % len(LICENSE_STREAMS)] for i in range(count)]
    rng.shuffle(streams)
    offsets = sorted(rng.uniform(0, window_s) for _ in range(count))
    plans = []
    for index, (stream, offset) in enumerate(zip(streams, offsets, strict=True)):
        size = rng.choice(KINDS[stream].sizes)
        plans.append(Pending(index + 1, stream, size, offset))
    return plans


def license_now(sim: Any, plan: Pending) -> None:
    from syncd.simulator.catalog import file_ext

    now = dt.datetime.now(dt.UTC)
    item = sim.add_license(plan.stream, size=plan.size, download_time=now)
    plan.licensed_at = time.monotonic()
    plan.licensed_utc = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    plan.license_id = item["id"]
    plan.media_id = item[{"images": "image", "videos": "video", "audio": "audio"}[plan.stream]][
        "id"
    ]
    plan.key = f"{plan.stream}/{plan.media_id}/{plan.size}{file_ext(plan.stream, plan.size)}"
    plan.file_bytes = sim.expected_size(plan.stream, plan.media_id, plan.size)


def check_arrival(plan: Pending, storage: Path, now: float) -> None:
    """Marks when the file (final key, full size) and the sidecar listing the license are
    first seen; arrived once both are."""
    if plan.file_seen_at is None:
        try:
            if (storage / plan.key).stat().st_size == plan.file_bytes:
                plan.file_seen_at = now
        except FileNotFoundError:
            pass
    if plan.sidecar_seen_at is None:
        sidecar = storage / plan.stream / plan.media_id / "metadata.json"
        try:
            doc = json.loads(sidecar.read_text())
        except (FileNotFoundError, ValueError):
            doc = None
        if isinstance(doc, dict) and any(
            isinstance(lic, dict) and lic.get("license_id") == plan.license_id
            for lic in doc.get("licenses", [])
        ):
            plan.sidecar_seen_at = now
    if plan.file_seen_at is not None and plan.sidecar_seen_at is not None:
        plan.arrived_at = max(plan.file_seen_at, plan.sidecar_seen_at)


# --- API requests -----------------------------------------------------------------------------


@dataclass
class RequestCounts:
    total: int
    list: int
    redownload: int
    other: int

    def __sub__(self, other: RequestCounts) -> RequestCounts:
        return RequestCounts(
            self.total - other.total,
            self.list - other.list,
            self.redownload - other.redownload,
            self.other - other.other,
        )


def count_requests(sim: Any) -> RequestCounts:
    records = sim.api_requests()
    lists = sum(1 for r in records if r.method == "GET" and r.path.endswith("/licenses"))
    redownloads = sum(1 for r in records if r.method == "POST" and r.path.endswith("/downloads"))
    return RequestCounts(len(records), lists, redownloads, len(records) - lists - redownloads)


# --- reporting --------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = share * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def first_line(cmd: list[str]) -> str | None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (done.stdout or done.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return None


def machine() -> dict[str, Any]:
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = first_line(["nproc"])
    return {
        "nproc": int(nproc) if nproc and nproc.isdigit() else None,
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def git_commit() -> dict[str, Any]:
    commit = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    try:
        status = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        status = ""
    return {"commit": commit, "dirty": bool(status.strip())}


def job_runs(serve: Serve, since: float, until: float) -> dict[str, Any]:
    """serve's catch-up runs that started within [since, until] by this process's clock."""
    started = [e for e in serve.jobs("catch_up", "job.started") if since <= e.at <= until]
    ended = [
        e
        for e in serve.jobs("catch_up", "job.finished") + serve.jobs("catch_up", "job.skipped")
        if since <= e.at <= until
    ]
    durations = [float(e.event["duration_s"]) for e in ended if "duration_s" in e.event]
    gaps = [b.at - a.at for a, b in zip(started, started[1:], strict=False)]
    outcomes: dict[str, int] = {}
    for e in ended:
        outcome = str(e.event.get("outcome") or e.event.get("event", "?").split(".")[-1])
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return {
        "started": len(started),
        "outcomes": outcomes,
        "duration_s": {
            "median": round(statistics.median(durations), 3) if durations else None,
            "max": round(max(durations), 3) if durations else None,
        },
        "gap_between_starts_s": {
            "median": round(statistics.median(gaps), 2) if gaps else None,
            "min": round(min(gaps), 2) if gaps else None,
            "max": round(max(gaps), 2) if gaps else None,
        },
    }


def render(report: dict[str, Any]) -> str:
    p = report["parameters"]
    res = report["results"]
    lines = [
        f"schedule {p['schedule']}, {p['licenses']} licenses over {p['minutes']:g} min "
        f"(seed {p['seed']}), API latency {p['api_latency_ms']} ms, "
        f"starting history {p['history']} licenses",
        "",
        f"{'#':>3}  {'stream':<7} {'license':<12} {'at +s':>7} {'to next run s':>14}"
        f"{'latency s':>11}",
    ]
    for row in report["licenses"]:
        latency = "-" if row["latency_s"] is None else f"{row['latency_s']:.1f}"
        wait = "-" if row["to_next_run_s"] is None else f"{row['to_next_run_s']:.1f}"
        lines.append(
            f"{row['index']:>3}  {row['stream']:<7} {row['license_id']:<12} "
            f"{row['offset_s']:>7.1f} {wait:>14}{latency:>11}"
        )
    lat = res["latency_s"]
    lines += [""]
    if lat["median"] is not None:
        lines.append(
            f"license to DAM: median {lat['median']:.1f} s, p90 {lat['p90']:.1f} s, "
            f"worst {lat['worst']:.1f} s ({lat['arrived']}/{p['licenses']} arrived)"
        )
    else:
        lines.append("license to DAM: nothing arrived")
    per_hour = res["api_requests_per_hour"]
    lines.append(
        f"API requests per hour: {per_hour['total']:.0f} ({per_hour['list']:.0f} list, "
        f"{per_hour['redownload']:.0f} redownload) over {res['measured_s']:.0f} s"
    )
    runs = res["catch_up_runs"]
    lines.append(
        f"catch-up runs in the measured period: {runs['started']} "
        f"(median {runs['duration_s']['median']} s, gap between starts median "
        f"{runs['gap_between_starts_s']['median']} s); serve exit {res['serve_exit']} "
        f"{res['serve_stop_s']:.1f} s after SIGTERM"
    )
    lines.append(
        f"serve's CPU over its life: {res['serve_cpu_s']} s; peak RSS {res['serve_peak_rss_mb']} MB"
    )
    lines.append(f"for comparison: {COMMERCIAL}")
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="license-to-DAM latency of `syncd serve` against the simulator on loopback"
    )
    parser.add_argument("--licenses", type=int, help="licenses added (default 12; quick: 3)")
    parser.add_argument(
        "--minutes", type=float, help="window they are spread over (default 12; quick: 2)"
    )
    parser.add_argument(
        "--schedule", help="serve's jobs.catch_up, a duration (default 1m; quick: 20s)"
    )
    parser.add_argument(
        "--api-latency-ms", type=int, default=100, help="added to every API request (100)"
    )
    parser.add_argument(
        "--history", type=int, default=100, help="licenses in the starting history (100)"
    )
    parser.add_argument("--seed", type=int, default=1414)
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds to wait after the window for the last license (default: 5 schedule "
        "intervals, at least 120)",
    )
    parser.add_argument("--quick", action="store_true", help="3 licenses over 2 min, schedule 20s")
    parser.add_argument(
        "--workdir", type=Path, help="scratch parent (default: $TMPDIR); a fresh folder in it"
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the scratch folder (serve's log, storage)"
    )
    parser.add_argument(
        "--no-save", action="store_true", help="do not write benchmarks/results/latency-*.json"
    )
    args = parser.parse_args(argv)
    q = args.quick
    args.licenses = args.licenses if args.licenses is not None else (3 if q else 12)
    args.minutes = args.minutes if args.minutes is not None else (2.0 if q else 12.0)
    args.schedule = args.schedule or ("20s" if q else "1m")
    try:
        args.interval_s = parse_duration(args.schedule)
    except ValueError as exc:
        parser.error(f"--schedule: {exc}")
    if args.interval_s < 1 or args.licenses < 1 or args.minutes <= 0:
        parser.error("--schedule, --licenses and --minutes must be positive")
    if args.api_latency_ms < 0 or args.history < 0:
        parser.error("--api-latency-ms and --history must be at least 0")
    if args.timeout is None:
        args.timeout = max(120.0, 5.0 * args.interval_s)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _run(args)
    except BenchError as exc:
        print(f"latency.py: {exc}", file=sys.stderr)
        return 2
    finally:
        _kill_children()


def starting_catalog(history: int, seed: int) -> Any:
    from syncd.simulator import Catalog

    counts = {stream: round(history * share) for stream, share in HISTORY_SHARES.items()}
    counts["images"] += history - sum(counts.values())
    return Catalog.generate(seed, counts=counts)


def _run(args: argparse.Namespace) -> int:
    try:
        from syncd.simulator import Simulator
        from syncd.simulator.faults import RandomFaults
    except ImportError:
        raise BenchError(
            "syncd is not importable: run with .venv/bin/python (after scripts/setup.sh)"
        ) from None

    rng = random.Random(args.seed)
    window_s = args.minutes * 60
    plans = plan_licenses(args.licenses, window_s, rng)
    scratch = Path(
        tempfile.mkdtemp(prefix="syncd-latency-", dir=args.workdir or tempfile.gettempdir())
    )
    storage = scratch / "dam"
    metrics_port = free_port()
    sim = Simulator(
        starting_catalog(args.history, args.seed),
        token=TOKEN,
        host="127.0.0.1",
        random_faults=RandomFaults(seed=args.seed, latency_ms=args.api_latency_ms),
    ).start()
    serve: Serve | None = None
    keep = args.keep_logs
    try:
        env = clean_env(
            {
                "SYNCD_API__BASE_URL": sim.base_url,
                "SHUTTERSTOCK_API_TOKEN": TOKEN,
                "SYNCD_DATABASE__URL": f"sqlite:///{scratch}/syncd.db",
                "SYNCD_STORAGE__PATH": str(storage),
                "SYNCD_JOBS__CATCH_UP": args.schedule,
                "SYNCD_JOBS__VERIFY": "off",
                "SYNCD_JOBS__BACKFILL": "off",
                "SYNCD_JOBS__UPDATES": "off",
                "SYNCD_UPDATES__ENABLED": "false",
                "SYNCD_SERVE__METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
            }
        )
        print(
            f"simulator on {sim.base_url} ({len(sim.catalog)} licenses, API latency "
            f"{args.api_latency_ms} ms); serve with jobs.catch_up = {args.schedule!r}, "
            f"scratch {scratch}",
            flush=True,
        )
        serve = Serve(syncd_command(sys.executable), env, scratch, scratch / "serve.log")
        first = serve.wait_for("job.finished", "catch_up", 1, timeout=300)
        if first.event.get("outcome") != "success":
            raise BenchError(f"the first catch-up failed: {first.event}\n{serve.tail()}")
        t0 = time.monotonic()
        first_run_requests = count_requests(sim)
        print(
            f"first catch-up done: {first.event.get('detail')} in {first.event.get('duration_s')}"
            f" s, {first_run_requests.total} API requests; licensing {args.licenses} assets over "
            f"{args.minutes:g} min",
            flush=True,
        )

        deadline = t0 + window_s + args.timeout
        upcoming = list(plans)
        while True:
            now = time.monotonic()
            while upcoming and now >= t0 + upcoming[0].offset_s:
                plan = upcoming.pop(0)
                license_now(sim, plan)
                print(
                    f"  +{plan.licensed_at - t0:6.1f} s  licensed #{plan.index} {plan.stream} "
                    f"{plan.license_id} ({plan.key})",
                    flush=True,
                )
            now = time.monotonic()
            for plan in plans:
                if plan.licensed_at and plan.arrived_at is None:
                    check_arrival(plan, storage, now)
                    if plan.arrived_at is not None:
                        print(
                            f"  +{plan.arrived_at - t0:6.1f} s  in storage #{plan.index} after "
                            f"{plan.latency_s:.1f} s",
                            flush=True,
                        )
            if not upcoming and all(p.arrived_at is not None for p in plans):
                break
            if now > deadline:
                print(f"timed out: {args.timeout:.0f} s after the window", flush=True)
                keep = True
                break
            serve.alive()
            time.sleep(POLL_S)
        t_end = time.monotonic()
        measured = count_requests(sim) - first_run_requests
        usage = process_usage(serve.proc.pid)
        code, stop_s = serve.stop(timeout=120)
        if code != 0:
            keep = True
            raise BenchError(f"serve exited {code} after SIGTERM, not 0; log:\n{serve.tail()}")
    except BaseException:
        keep = True
        raise
    finally:
        sim.stop()
        if keep:
            print(f"scratch kept: {scratch} (serve's log: {scratch / 'serve.log'})", flush=True)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    measured_s = t_end - t0
    starts = serve.jobs("catch_up", "job.started")
    rows = []
    for plan in plans:
        following = [e.at for e in starts if e.at >= plan.licensed_at]
        rows.append(
            {
                "index": plan.index,
                "stream": plan.stream,
                "size": plan.size,
                "license_id": plan.license_id,
                "media_id": plan.media_id,
                "key": plan.key,
                "file_bytes": plan.file_bytes,
                "offset_s": round(plan.licensed_at - t0, 2),
                "licensed_utc": plan.licensed_utc,
                "latency_s": None if plan.latency_s is None else round(plan.latency_s, 2),
                "file_s": None
                if plan.file_seen_at is None
                else round(plan.file_seen_at - plan.licensed_at, 2),
                "sidecar_s": None
                if plan.sidecar_seen_at is None
                else round(plan.sidecar_seen_at - plan.licensed_at, 2),
                "to_next_run_s": round(following[0] - plan.licensed_at, 2) if following else None,
            }
        )
    latencies = [p.latency_s for p in plans if p.latency_s is not None]
    scale = 3600 / measured_s if measured_s > 0 else 0.0
    report: dict[str, Any] = {
        "benchmark": "latency",
        "utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": "quick" if args.quick else "full",
        "command": " ".join(["benchmarks/latency.py", *sys.argv[1:]]),
        "parameters": {
            "licenses": args.licenses,
            "minutes": args.minutes,
            "schedule": args.schedule,
            "api_latency_ms": args.api_latency_ms,
            "history": args.history,
            "seed": args.seed,
            "timeout_s": args.timeout,
            "poll_s": POLL_S,
            "streams_synced": "all five (sync.media default)",
        },
        "results": {
            "latency_s": {
                "arrived": len(latencies),
                "median": round(statistics.median(latencies), 2) if latencies else None,
                "p90": round(percentile(latencies, 0.9), 2) if latencies else None,
                "worst": round(max(latencies), 2) if latencies else None,
                "best": round(min(latencies), 2) if latencies else None,
            },
            "measured_s": round(measured_s, 2),
            "api_requests": asdict(measured),
            "api_requests_per_hour": {k: round(v * scale, 1) for k, v in asdict(measured).items()},
            "first_catch_up": {
                "api_requests": asdict(first_run_requests),
                "detail": first.event.get("detail"),
                "duration_s": first.event.get("duration_s"),
            },
            "catch_up_runs": job_runs(serve, t0, t_end),
            "catch_up_runs_total": len(starts),
            "serve_exit": code,
            "serve_stop_s": round(stop_s, 2),
            "serve_cpu_s": usage["cpu_s"],
            "serve_peak_rss_mb": usage["peak_rss_mb"],
        },
        "licenses": rows,
        "machine": machine(),
        "syncd_git": git_commit(),
    }
    print()
    print(render(report))
    if not args.no_save:
        out_dir = HERE / "results"
        out_dir.mkdir(exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = out_dir / f"latency-{stamp}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nresults: {path.relative_to(REPO)}")
    return 0 if len(latencies) == len(plans) else 1


if __name__ == "__main__":
    sys.exit(main())
