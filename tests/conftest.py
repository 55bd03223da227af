"""Shared fixtures: the simulator over real HTTP on loopback, and syncd run as an operator runs
it (a subprocess of ``python -m syncd``), so exit codes, stdout and signals are the real ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from syncd.simulator import Catalog, RandomFaults, Simulator
from tests.pgserver import postgres_server, postgres_url  # noqa: F401
from tests.s3servers import s3_servers  # noqa: F401

TOKEN = "sim-token-6f1d0c9e2b7a"
REPO = Path(__file__).resolve().parent.parent
# the storage the end-to-end tests sync into: "filesystem", or "moto" / "seaweedfs" for the
# sync suite's S3 variant (scripts/test.sh runs tests/test_sync*.py once on each)
STORAGE = os.environ.get("SYNCD_TEST_STORAGE", "filesystem")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "filesystem_only: about the folder backend itself (not run in the S3 variant)"
    )


def pytest_collection_modifyitems(config, items):
    """In the S3 variant, tests about the folder backend itself are deselected (and counted
    as such in pytest's report), never skipped."""
    if STORAGE == "filesystem":
        return
    kept = [item for item in items if item.get_closest_marker("filesystem_only") is None]
    config.hook.pytest_deselected(items=[i for i in items if i not in kept])
    items[:] = kept


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict:
        return json.loads(self.stdout.strip().splitlines()[-1])


class Syncd:
    """Runs syncd against one simulator, one database and one storage root."""

    def __init__(self, tmp_path: Path, sim: Simulator):
        self.sim = sim
        self.home = tmp_path
        self.root = tmp_path / "dam"
        self.db_path = tmp_path / "syncd.db"
        self.s3 = None
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "SYNCD_API__BASE_URL": sim.base_url,
            "SHUTTERSTOCK_API_TOKEN": TOKEN,
            "SYNCD_DATABASE__URL": f"sqlite:///{self.db_path}",
            "SYNCD_STORAGE__PATH": str(self.root),
            "SYNCD_API__MAX_RETRIES": "2",
            "PYTHONPATH": str(REPO),
        }
        if STORAGE != "filesystem":
            from tests.s3servers import S3Mirror, shared_server

            server = shared_server(STORAGE)
            self.s3 = S3Mirror(server, server.new_bucket(), "dam", self.root)
            self.env.update(self.s3.env())

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "syncd", *args]

    def run(self, *args: str, env: dict | None = None, timeout: float = 120) -> Finished:
        done = subprocess.run(
            self.command(*args),
            cwd=self.home,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if self.s3 is not None:
            self.s3.refresh()
        return Finished(done.returncode, done.stdout, done.stderr)

    def sync(self, *args: str, env: dict | None = None) -> Finished:
        return self.run("sync", "--json", "--no-progress", *args, env=env)

    def start(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            self.command(*args),
            cwd=self.home,
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def start_until_stored(self, count: int, *args: str) -> subprocess.Popen:
        """Starts ``syncd ARGS`` and returns once ``count`` files are under final keys."""
        process = self.start(*args)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(self.stored_files()) < count:
            if process.poll() is not None:
                break
            time.sleep(0.005)
        return process

    def stored_files(self) -> dict[str, Path]:
        """Every object under a final key (sidecars excluded), by key. On S3, read through a
        local mirror of the bucket's prefix, brought up to date first."""
        if self.s3 is not None:
            self.s3.refresh()
        return {
            p.relative_to(self.root).as_posix(): p
            for p in self.root.rglob("*")
            if p.is_file()
            and p.name != "metadata.json"
            and not p.name.endswith(".xmp")
            and not p.relative_to(self.root).as_posix().startswith(".")
        }

    def leftovers(self) -> list[str]:
        """What half-written data there is: partial files, or unfinished multipart uploads."""
        if self.s3 is not None:
            return self.s3.unfinished_uploads()
        partial = self.root / ".syncd-partial"
        if not partial.is_dir():
            return []
        # start-up's writability probe is made and removed at once: it is not a download
        # (a test that took it for one would signal a process still starting up)
        return sorted(p.name for p in partial.iterdir() if not p.name.startswith("probe-"))

    def leave_partial(self, key: str) -> None:
        """What a killed run leaves while writing ``key``: a partial file, or on S3 an
        unfinished multipart upload with one part sent."""
        if self.s3 is not None:
            self.s3.leave_upload(key, b"x" * (5 << 20))
            return
        partial = self.root / ".syncd-partial"
        partial.mkdir(exist_ok=True)
        (partial / key.replace("/", "_")).write_bytes(b"x" * 1000)

    def remove(self, key: str) -> None:
        """Deletes a stored object behind syncd's back."""
        (self.root / key).unlink()
        if self.s3 is not None:
            self.s3.delete(key)

    def overwrite(self, key: str, data: bytes) -> None:
        """Replaces a stored object's bytes behind syncd's back."""
        (self.root / key).write_bytes(data)
        if self.s3 is not None:
            self.s3.put(key, data)

    def sidecar(self, media_type: str, media_id: str) -> dict:
        return json.loads((self.root / media_type / media_id / "metadata.json").read_text())


def file_catalog(seed: int, stream: str, count: int, size: int) -> Catalog:
    """``count`` downloadable licenses of distinct assets, each file ``size`` bytes."""
    return Catalog.generate(
        seed=seed, counts={stream: count}, sizes=[size], twin_ratio=0, not_downloadable_ratio=0
    )


def slow_simulator(catalog: Catalog, latency_ms: int = 150) -> Simulator:
    """A simulator whose API answers take a while, so that a run lasts long enough to be
    interrupted in the middle whatever the machine's speed."""
    return Simulator(catalog, token=TOKEN, random_faults=RandomFaults(latency_ms=latency_ms))


@pytest.fixture
def sim():
    with Simulator(Catalog.example(), token=TOKEN) as simulator:
        yield simulator


@pytest.fixture
def api(sim):
    """A plain HTTP session that speaks to the simulator with its token."""
    import requests

    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {sim.token}"
        yield session


@pytest.fixture
def syncd(tmp_path, sim) -> Syncd:
    return Syncd(tmp_path, sim)


def sigkill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)


def request_kind(record) -> str:
    """What an API request the simulator received was for: ``list`` (license history),
    ``redownload``, ``details``, ``updated`` or ``other``."""
    path = record.path
    if record.method == "POST" and path.endswith("/downloads"):
        return "redownload"
    if path.endswith("/licenses"):
        return "list"
    if path.endswith("/updated"):
        return "updated"
    if path in ("/v2/images", "/v2/videos", "/v2/audio") or (
        path.startswith(("/v2/editorial/images/", "/v2/editorial/videos/")) and path.count("/") == 4
    ):
        return "details"
    return "other"


def requests_by_kind(sim: Simulator, since: int = 0) -> dict[str, int]:
    """The API requests the simulator received (from the ``since``-th on), counted by kind."""
    counts: dict[str, int] = {}
    for record in sim.api_requests()[since:]:
        kind = request_kind(record)
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def update_windows(floor, now) -> int:
    """How many date windows a pass of /v2/images/updated (or videos) walks from a mark at
    ``floor``: the days from floor's date at UTC-12 to now's at UTC+14 (the API's zone is not
    named), three to the first window and two more to each next one (they overlap by a day)."""
    import math
    from datetime import timedelta

    days = ((now + timedelta(hours=14)).date() - (floor - timedelta(hours=12)).date()).days + 1
    return 1 + math.ceil(max(0, days - 3) / 2)


def steady_update_windows() -> int:
    """Windows of a dated /updated stream after an earlier pass this hour saw nothing newer
    (the mark an hour back): one, at any time of day."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    return update_windows(now - timedelta(hours=1, minutes=2), now)


def first_pass_updated_requests(lookback_s: int = 86_400) -> int:
    """/updated requests of a first pass with nothing in the feeds: the windows of images and
    videos from ``updates.lookback`` ago (one or two, by the time of day), and one editorial."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    return 2 * update_windows(now - timedelta(seconds=lookback_s), now) + 1


@pytest.fixture
def simulated():
    """Starts simulators on catalogs a test builds (``latency_ms``: added to every API
    answer); stops them after the test."""
    started: list[Simulator] = []

    def start(catalog: Catalog, latency_ms: int = 0) -> Simulator:
        faults = RandomFaults(latency_ms=latency_ms) if latency_ms else None
        sim = Simulator(catalog, token=TOKEN, random_faults=faults).start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()
