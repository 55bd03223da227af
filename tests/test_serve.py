"""`syncd serve` end to end: the real daemon as a subprocess, against the simulator on loopback,
with its /metrics and /healthz read over HTTP and its systemd messages read from a real
datagram socket."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from itertools import pairwise

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from syncd.db.engine import HEAD_REVISION
from syncd.simulator import Simulator
from syncd.streams import LICENSE_STREAMS
from tests.conftest import TOKEN, Syncd, file_catalog, requests_by_kind

BIG = 24 << 20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Served:
    """`syncd serve` running: its JSON log events as they come, its HTTP endpoints, its end."""

    def __init__(self, syncd: Syncd, *args: str, env: dict | None = None):
        self.port = free_port()
        defaults = {
            "SYNCD_SERVE__METRICS_ADDRESS": f"127.0.0.1:{self.port}",
            "SYNCD_JOBS__CATCH_UP": "1s",
            "SYNCD_JOBS__VERIFY": "off",
            "SYNCD_JOBS__BACKFILL": "off",
        }
        # a value of None leaves that variable out (the configuration file decides)
        self.env = {k: v for k, v in {**defaults, **(env or {})}.items() if v is not None}
        self.events: list[dict] = []
        self.raw: list[str] = []
        self._changed = threading.Condition()
        self.process = syncd.start(*args, "serve", env=self.env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.raw.append(line)
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    pass
                self._changed.notify_all()

    def wait_for(self, what: Callable[[dict], bool], timeout: float = 60, count: int = 1) -> dict:
        """The ``count``-th log event that ``what`` accepts, waiting for it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [event for event in self.events if what(event)]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise AssertionError(
                        f"no such event (exit {self.process.poll()}); log:\n" + "".join(self.raw)
                    )
                self._changed.wait(min(left, 0.2))

    def job_finished(self, outcome: str = "success", count: int = 1, timeout: float = 60) -> dict:
        return self.wait_for(
            lambda e: (
                e.get("event") == "job.finished"
                and e.get("job") == "catch_up"
                and e.get("outcome") == outcome
            ),
            timeout,
            count,
        )

    def get(self, path: str) -> requests.Response:
        return requests.get(f"http://127.0.0.1:{self.port}{path}", timeout=10)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> tuple[int, float]:
        """Sends ``sig``; returns the exit code and the seconds it took to exit."""
        sent = time.monotonic()
        self.process.send_signal(sig)
        code = self.process.wait(timeout)
        elapsed = time.monotonic() - sent
        self._reader.join(10)
        return code, elapsed

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


@pytest.fixture
def served():
    started: list[Served] = []

    def start(syncd: Syncd, *args: str, env: dict | None = None) -> Served:
        serving = Served(syncd, *args, env=env)
        started.append(serving)
        return serving

    yield start
    for serving in started:
        serving.kill()


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"{name}{labels} not in the exposition")


def assert_whole(syncd: Syncd, key: str) -> None:
    """The object under ``key`` is the simulator's file, byte for byte."""
    media_type, media_id, name = key.rsplit("/", 2)
    data = (syncd.root / key).read_bytes()
    expected = syncd.sim.expected_sha256(media_type, media_id, name.split(".")[0])
    assert hashlib.sha256(data).hexdigest() == expected
    sidecar = syncd.sidecar(media_type, media_id)
    recorded = {f["key"]: f for f in sidecar["files"]}[key]
    assert recorded["size_bytes"] == len(data)
    assert recorded["sha256"] == hashlib.sha256(data).hexdigest()


# --- the schedule ---------------------------------------------------------------------------


def test_serve_picks_up_licenses_added_while_it_runs(syncd, served):
    serving = served(syncd)
    serving.job_finished()
    first = set(syncd.stored_files())
    assert len(first) == 9  # the example catalog: 9 files to fetch
    added = syncd.sim.add_license("images", media_id="7000001", size="huge")
    added_key = "images/7000001/huge.jpg"
    deadline = time.monotonic() + 30
    while added_key not in syncd.stored_files() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(syncd.stored_files()) == first | {added_key}
    assert_whole(syncd, added_key)
    assert syncd.sidecar("images", "7000001")["licenses"][0]["license_id"] == added["id"]
    code, _ = serving.stop()
    assert code == 0


def logged_at(event: dict) -> float:
    """The Unix time of a log event, from its ISO timestamp."""
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def test_catch_up_runs_once_at_start_then_on_its_schedule(syncd, served):
    serving = served(syncd, env={"SYNCD_JOBS__CATCH_UP": "3s"})
    serving.job_finished(count=3, timeout=30)
    ready = logged_at(serving.wait_for(lambda e: e.get("event") == "serve.ready"))
    starts = [
        logged_at(e)
        for e in serving.events
        if e.get("event") == "job.started" and e.get("job") == "catch_up"
    ]
    assert len(starts) >= 3
    # at once on start, not one interval (3 s) after it
    assert starts[0] - ready < 1.5, (ready, starts)
    # then on its schedule: an interval apart, not back to back
    gaps = [later - earlier for earlier, later in pairwise(starts)]
    assert all(gap > 2.5 for gap in gaps), gaps
    code, _ = serving.stop()
    assert code == 0


def test_sigint_stops_serve_with_exit_0_too(syncd, served):
    serving = served(syncd)
    serving.job_finished()
    code, _ = serving.stop(signal.SIGINT)
    assert code == 0


# --- stopping -------------------------------------------------------------------------------


@pytest.fixture
def big_videos(tmp_path):
    """A simulator serving videos of 24 MiB each, and a syncd against it."""
    running: list[Simulator] = []

    def make(count: int = 1) -> Syncd:
        sim = Simulator(file_catalog(11, "videos", count, BIG), token=TOKEN).start()
        running.append(sim)
        return Syncd(tmp_path, sim)

    yield make
    for sim in running:
        sim.stop()


def wait_for_partial(syncd: Syncd, serving: Served, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not syncd.leftovers():
        assert time.monotonic() < deadline, "no download started:\n" + "".join(serving.raw)
        assert serving.process.poll() is None, "".join(serving.raw)
        time.sleep(0.02)


def test_sigterm_during_a_large_download_exits_0_within_the_grace_and_leaves_no_partial(
    big_videos, served
):
    syncd = big_videos()
    # 24 MiB at 2 MB/s: 12 s, far longer than the 1 s of grace
    serving = served(
        syncd,
        env={
            "SYNCD_SYNC__BWLIMIT": "2MB",
            "SYNCD_SERVE__GRACE_S": "1",
            "SYNCD_JOBS__CATCH_UP": "1h",
        },
    )
    wait_for_partial(syncd, serving)
    code, elapsed = serving.stop()
    assert code == 0, "".join(serving.raw)
    assert elapsed < 1 + 4, f"took {elapsed:.1f} s with a grace of 1 s"
    assert syncd.leftovers() == []
    assert syncd.stored_files() == {}
    assert any(e.get("event") == "serve.grace_over" for e in serving.events)


def test_sigterm_lets_the_file_in_flight_finish_within_the_grace_and_starts_no_other(
    big_videos, served
):
    syncd = big_videos(count=3)
    # one at a time, 24 MiB at 12 MB/s: about 2 s each, well inside 30 s of grace
    serving = served(
        syncd,
        env={
            "SYNCD_SYNC__BWLIMIT": "12MB",
            "SYNCD_SYNC__CONCURRENCY": "1",
            "SYNCD_SERVE__GRACE_S": "30",
            "SYNCD_JOBS__CATCH_UP": "1h",
        },
    )
    wait_for_partial(syncd, serving)
    code, elapsed = serving.stop()
    assert code == 0, "".join(serving.raw)
    assert elapsed < 30
    stored = syncd.stored_files()
    assert len(stored) == 1, stored  # the one in flight, and no other started
    assert_whole(syncd, next(iter(stored)))
    assert syncd.leftovers() == []
    assert not any(e.get("event") == "serve.grace_over" for e in serving.events)


def test_a_sync_started_while_serve_fetches_exits_75_at_once(big_videos, served):
    syncd = big_videos()
    serving = served(
        syncd,
        env={
            "SYNCD_SYNC__BWLIMIT": "2MB",
            "SYNCD_SERVE__GRACE_S": "1",
            "SYNCD_JOBS__CATCH_UP": "1h",
        },
    )
    wait_for_partial(syncd, serving)
    requests_before = len(syncd.sim.api_requests())
    started = time.monotonic()
    done = syncd.sync()
    assert done.returncode == 75, done.stderr
    assert time.monotonic() - started < 10
    assert "holds the lock" in done.stderr
    assert len(syncd.sim.api_requests()) == requests_before  # the sync sent nothing
    code, _ = serving.stop()
    assert code == 0


# --- metrics and health ---------------------------------------------------------------------


def test_metrics_count_the_run_and_healthz_follows_the_api(syncd, served):
    serving = served(syncd)
    serving.job_finished()
    text = serving.get("/metrics").text
    stored = syncd.stored_files()
    images = sum(1 for key in stored if key.startswith("images/"))
    assert images > 0
    assert metric(text, "syncd_files_downloaded_total", media_type="images") >= images
    assert metric(text, "syncd_licenses_seen_total", media_type="images") >= 1
    assert metric(text, "syncd_bytes_downloaded_total", media_type="images") > 0
    assert metric(text, "syncd_job_runs_total", job="catch_up", outcome="success") >= 1
    assert metric(text, "syncd_api_requests_total", code="200") >= 14
    assert metric(text, "syncd_job_last_success_timestamp_seconds", job="catch_up") > 0
    assert serving.get("/healthz").status_code == 200

    # the API keeps failing: every license list answers 503
    syncd.sim.add_fault("GET", r"/licenses$", status=503, times=1_000_000)
    serving.job_finished("failure", timeout=60)
    health = serving.get("/healthz")
    assert health.status_code == 503
    assert "catch_up" in health.text
    assert metric(serving.get("/metrics").text, "syncd_api_requests_total", code="503") >= 1

    syncd.sim.clear_faults()  # it recovers
    failures = sum(
        1
        for e in serving.events
        if e.get("event") == "job.finished" and e.get("outcome") == "failure"
    )
    successes = sum(
        1
        for e in serving.events
        if e.get("event") == "job.finished" and e.get("outcome") == "success"
    )
    serving.job_finished("success", count=successes + 1, timeout=60)
    assert failures >= 1
    assert serving.get("/healthz").status_code == 200
    code, _ = serving.stop()
    assert code == 0


def test_sync_metrics_file_holds_the_runs_counters(syncd, tmp_path):
    path = tmp_path / "syncd.prom"
    done = syncd.sync("--metrics-file", str(path))
    assert done.returncode == 0, done.stderr
    text = path.read_text()
    images = sum(1 for key in syncd.stored_files() if key.startswith("images/"))
    assert metric(text, "syncd_files_downloaded_total", media_type="images") == images
    assert metric(text, "syncd_job_runs_total", job="catch_up", outcome="success") == 1
    assert metric(text, "syncd_api_requests_total", code="200") == done.summary["api_requests"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".syncd.prom")]


def test_metrics_file_in_a_missing_folder_is_a_usage_error_before_anything(syncd, tmp_path):
    done = syncd.sync("--metrics-file", str(tmp_path / "nowhere" / "syncd.prom"))
    assert done.returncode == 2
    assert "does not exist" in done.stderr
    assert not syncd.db_path.exists()
    assert syncd.sim.api_requests() == []


# --- configuration --------------------------------------------------------------------------


def test_sighup_rereads_the_configuration_and_refuses_a_bad_one(syncd, served, tmp_path):
    config = tmp_path / "syncd.toml"
    config.write_text('[jobs]\ncatch_up = "1h"\n')
    serving = served(syncd, "--config", str(config), env={"SYNCD_JOBS__CATCH_UP": None})
    serving.job_finished()

    config.write_text('[jobs]\ncatch_up = "every now and then"\n')
    serving.process.send_signal(signal.SIGHUP)
    refused = serving.wait_for(lambda e: e.get("event") == "config.reload_refused")
    assert "jobs.catch_up" in refused["error"]
    assert serving.process.poll() is None
    assert serving.get("/healthz").status_code == 200

    config.write_text('[jobs]\ncatch_up = "1s"\n')
    serving.process.send_signal(signal.SIGHUP)
    serving.wait_for(lambda e: e.get("event") == "config.reloaded")
    serving.job_finished(count=3, timeout=30)  # now every second, not every hour
    code, _ = serving.stop()
    assert code == 0


def test_serve_without_a_token_is_a_config_error_that_creates_nothing(syncd):
    env = dict(syncd.env)
    del env["SHUTTERSTOCK_API_TOKEN"]
    done = subprocess.run(
        syncd.command("serve"), cwd=syncd.home, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "SHUTTERSTOCK_API_TOKEN" in done.stderr
    assert not syncd.db_path.exists() and not syncd.root.exists()


def test_metrics_address_in_use_is_a_config_error(syncd):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = syncd.run(
            "serve",
            env={"SYNCD_SERVE__METRICS_ADDRESS": f"127.0.0.1:{port}"},
            timeout=60,
        )
    assert done.returncode == 2
    assert "serve.metrics_address" in done.stderr.strip().splitlines()[-1]


# --- systemd --------------------------------------------------------------------------------


def test_serve_speaks_the_notify_protocol_ready_after_migrations_watchdog_stopping(
    syncd, served, tmp_path
):
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(0.2)
    messages: list[str] = []
    schema_at_ready: list[str | None] = []
    done = threading.Event()

    def listen() -> None:
        while not done.is_set():
            try:
                message = listener.recv(4096).decode()
            except TimeoutError:
                continue
            if "READY=1" in message.splitlines():
                with sqlite3.connect(syncd.db_path) as db:
                    schema_at_ready.append(
                        db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
                    )
            messages.append(message)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    try:
        serving = served(syncd, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"})
        serving.job_finished()
        deadline = time.monotonic() + 10
        while sum("WATCHDOG=1" in m.splitlines() for m in messages) < 4:
            assert time.monotonic() < deadline, messages
            time.sleep(0.05)
        code, _ = serving.stop()
        assert code == 0
        deadline = time.monotonic() + 5
        while not any("STOPPING=1" in m.splitlines() for m in messages):
            assert time.monotonic() < deadline, messages
            time.sleep(0.05)
    finally:
        done.set()
        thread.join(5)
        listener.close()
    lines = [m.splitlines() for m in messages]
    ready = next(i for i, m in enumerate(lines) if "READY=1" in m)
    extend = next(
        i for i, m in enumerate(lines) if any(x.startswith("EXTEND_TIMEOUT_USEC=") for x in m)
    )
    assert extend < ready
    assert schema_at_ready == [HEAD_REVISION]
    assert any(x.startswith("STATUS=") for m in lines for x in m)
    stopping = next(i for i, m in enumerate(lines) if "STOPPING=1" in m)
    assert stopping > ready
    assert all(x == x.strip() for m in lines for x in m)
    assert TOKEN not in "".join(messages)


def test_a_job_due_while_a_sync_holds_the_storage_is_skipped_and_serve_goes_on(big_videos, served):
    syncd = big_videos()
    by_hand = syncd.start("sync", "--no-progress", env={"SYNCD_SYNC__BWLIMIT": "3MB"})
    try:
        deadline = time.monotonic() + 30
        while not syncd.leftovers():
            assert time.monotonic() < deadline and by_hand.poll() is None
            time.sleep(0.02)
        serving = served(syncd, env={"SYNCD_JOBS__CATCH_UP": "1h"})
        skipped = serving.wait_for(
            lambda e: e.get("event") == "job.skipped" and e.get("job") == "catch_up"
        )
        assert "holds the lock" in skipped["reason"]
        text = serving.get("/metrics").text
        assert metric(text, "syncd_job_runs_total", job="catch_up", outcome="skipped") == 1
        assert metric(text, "syncd_job_runs_total", job="catch_up", outcome="failure") == 0
        assert serving.process.poll() is None
        code, _ = serving.stop()
        assert code == 0
    finally:
        by_hand.terminate()
        by_hand.communicate(timeout=60)
    assert syncd.leftovers() == []


def test_the_verify_job_queues_a_lost_file_and_the_next_catch_up_fetches_it(syncd, served):
    first = syncd.sync()
    assert first.returncode == 0
    lost = sorted(syncd.stored_files())[0]
    syncd.remove(lost)
    serving = served(syncd, env={"SYNCD_JOBS__CATCH_UP": "2s", "SYNCD_JOBS__VERIFY": "1s"})
    verified = serving.wait_for(
        lambda e: e.get("event") == "job.finished" and e.get("job") == "verify"
    )
    assert "1 missing" in verified["detail"] and "1 queued again" in verified["detail"]
    deadline = time.monotonic() + 30
    while lost not in syncd.stored_files():
        assert time.monotonic() < deadline, "".join(serving.raw)
        time.sleep(0.1)
    assert_whole(syncd, lost)
    code, _ = serving.stop()
    assert code == 0


def test_the_backfill_job_fills_what_a_future_only_catch_up_left_and_keeps_its_watermark(
    syncd, served
):
    """``sync.since = "now"``: the catch-up records nothing of the history; serve's backfill job
    then fetches all of it, and the next catch-up still costs one list request per stream."""
    serving = served(
        syncd,
        env={
            "SYNCD_SYNC__SINCE": "now",
            "SYNCD_JOBS__CATCH_UP": "1h",
            "SYNCD_JOBS__BACKFILL": "2s",
        },
    )
    caught_up = serving.job_finished()
    assert "0 downloaded" in caught_up["detail"], caught_up
    assert not syncd.stored_files()
    filled = serving.wait_for(
        lambda e: e.get("event") == "job.finished" and e.get("job") == "backfill", timeout=60
    )
    assert filled["outcome"] == "success", filled
    assert "9 downloaded" in filled["detail"], filled
    assert len(syncd.stored_files()) == 9
    for key in syncd.stored_files():
        assert_whole(syncd, key)
    code, _ = serving.stop()
    assert code == 0
    before = len(syncd.sim.api_requests())
    again = syncd.sync()
    assert again.returncode == 0, again.stderr
    assert again.summary["new_licenses"] == 0
    sent = requests_by_kind(syncd.sim, before)
    assert sent["list"] == len(LICENSE_STREAMS) and "details" not in sent, sent


def test_the_verify_job_has_details_without_an_update_feed_fetched_again(syncd, served):
    """Audio has no /updated feed: each verify job marks a share of its assets (at least one)
    to have its details fetched again by the next catch-up."""
    assert syncd.sync().returncode == 0
    asked = len(syncd.sim.detail_ids_requested("audio"))
    assert asked == 2  # the example catalogue's two tracks, once
    serving = served(syncd, env={"SYNCD_JOBS__CATCH_UP": "2s", "SYNCD_JOBS__VERIFY": "1s"})
    verified = serving.wait_for(
        lambda e: e.get("event") == "job.finished" and e.get("job") == "verify"
    )
    assert "1 assets' details to be fetched again" in verified["detail"], verified
    deadline = time.monotonic() + 30
    while len(syncd.sim.detail_ids_requested("audio")) == asked:
        assert time.monotonic() < deadline, "".join(serving.raw)
        time.sleep(0.1)
    code, _ = serving.stop()
    assert code == 0
