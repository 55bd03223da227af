"""``sync.since`` and ``syncd backfill`` (CONTRACT 1 and 3, issue 14): a first catch-up that
reaches back only to a date (or takes future licenses only), and a backfill that walks exactly
[--since, --until) through date windows, resumes from its checkpoint after a kill, never moves
the catch-up's watermark, and leaves the next catch-up at one list request per stream."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta

import pytest

from syncd.api.records import LicensePage
from syncd.backfill import RangeIgnored, _check_inside, whole_second
from syncd.simulator import Catalog
from syncd.streams import LICENSE_STREAMS
from tests.conftest import Syncd, requests_by_kind, sigkill

T0 = datetime(2025, 1, 1, tzinfo=UTC)
FILE = 3000  # bytes per file: these tests are about which licenses, not about bytes


def history(count: int, stream: str = "images", step_s: int = 3600, ties: int = 0) -> Catalog:
    """``count`` licenses of distinct assets ``step_s`` apart from T0 (the newest last), the
    last ``ties`` of them all in one second."""
    catalog = Catalog(seed=count)
    for n in range(count):
        moment = T0 + timedelta(seconds=step_s * min(n, count - ties))
        if n >= count - ties:
            moment += timedelta(milliseconds=n % 1000)
        catalog.add(stream, download_time=moment, file_size=FILE)
    return catalog


def times_of(catalog: Catalog, stream: str = "images") -> dict[str, datetime]:
    return {lic.id: lic.time for lic in catalog.history(stream)}


def recorded(syncd: Syncd, stream: str = "images") -> set[str]:
    with sqlite3.connect(syncd.db_path) as db:
        rows = db.execute("select license_id from licenses where media_type = ?", (stream,))
        return {row[0] for row in rows}


def stored_licenses(syncd: Syncd, stream: str = "images") -> set[str]:
    with sqlite3.connect(syncd.db_path) as db:
        rows = db.execute(
            "select license_id from licenses where media_type = ? and status = 'stored'", (stream,)
        )
        return {row[0] for row in rows}


def watermark(syncd: Syncd, stream: str = "images") -> tuple | None:
    with sqlite3.connect(syncd.db_path) as db:
        return db.execute(
            "select watermark_license_id, watermark_time from stream_state where stream = ?",
            (stream,),
        ).fetchone()


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def query(record, name: str) -> str | None:
    values = record.query.get(name)
    return values[0] if values else None


# --- sync.since -------------------------------------------------------------------------------


def test_since_the_first_catch_up_fetches_only_what_is_newer_and_its_list_requests_stop(
    tmp_path, simulated
):
    catalog = history(1000)
    times = times_of(catalog)
    since = T0 + timedelta(hours=700, minutes=30)  # 299 licenses at or after it
    newer = {lid for lid, moment in times.items() if moment >= since}
    assert len(newer) == 299
    syncd = Syncd(tmp_path, simulated(catalog))
    done = syncd.sync("--media", "images", env={"SYNCD_SYNC__SINCE": iso(since)})
    assert done.returncode == 0, done.stderr
    assert recorded(syncd) == newer
    assert stored_licenses(syncd) == newer
    assert done.summary["downloaded"] == 299
    lists = syncd.sim.list_requests("images")
    assert len(lists) == 2  # ceil(299 / 200): not the 5 pages of the whole history
    assert all(query(r, "start_date") == iso(since) for r in lists)
    newest = max(times, key=lambda lid: times[lid])
    assert watermark(syncd)[0] == newest

    # the second catch-up: one list request, nothing new, and sync.since no longer applies
    again = syncd.sync("--media", "images", env={"SYNCD_SYNC__SINCE": iso(since)})
    assert again.returncode == 0, again.stderr
    assert again.summary["new_licenses"] == 0
    later = syncd.sim.list_requests("images")[2:]
    assert len(later) == 1 and query(later[0], "start_date") is None


def test_since_a_moment_with_nothing_newer_still_bounds_the_next_catch_up(tmp_path, simulated):
    catalog = history(30)
    syncd = Syncd(tmp_path, simulated(catalog))
    since = T0 + timedelta(days=365)
    done = syncd.sync("--media", "images", env={"SYNCD_SYNC__SINCE": iso(since)})
    assert done.returncode == 0, done.stderr
    assert recorded(syncd) == set()
    # the next catch-up (sync.since gone) still stops at the moment: older licenses stay
    # the backfill's, and a new one is fetched
    added = syncd.sim.add_license(
        "images", file_size=FILE, download_time=since + timedelta(hours=1)
    )
    again = syncd.sync("--media", "images")
    assert again.returncode == 0, again.stderr
    assert recorded(syncd) == {added["id"]}
    assert len(syncd.sim.list_requests("images")) == 2


def test_since_now_records_nothing_then_fetches_only_future_licenses(tmp_path, simulated):
    catalog = history(450)
    syncd = Syncd(tmp_path, simulated(catalog))
    env = {"SYNCD_SYNC__SINCE": "now"}
    done = syncd.sync("--media", "images,videos", env=env)
    assert done.returncode == 0, done.stderr
    assert done.summary["new_licenses"] == 0 and done.summary["downloaded"] == 0
    assert recorded(syncd) == set()
    assert len(syncd.sim.list_requests("images")) == 1  # one page, not three
    assert len(syncd.sim.list_requests("videos")) == 1
    # licenses that arrive later, in a stream that had some and in one that had none
    image = syncd.sim.add_license("images", file_size=FILE)
    video = syncd.sim.add_license("videos", file_size=FILE, download_time=datetime.now(UTC))
    again = syncd.sync("--media", "images,videos", env=env)
    assert again.returncode == 0, again.stderr
    assert recorded(syncd) == {image["id"]}
    assert recorded(syncd, "videos") == {video["id"]}
    assert again.summary["downloaded"] == 2


# --- backfill ---------------------------------------------------------------------------------


def test_backfill_fills_exactly_its_range_and_never_moves_the_watermark(tmp_path, simulated):
    catalog = history(900, step_s=600, ties=0)
    # ties on the range's edges and inside it: same-second licenses at both bounds
    since = T0 + timedelta(seconds=600 * 100)
    until = T0 + timedelta(seconds=600 * 700)
    for moment in (since, until, since + timedelta(seconds=600 * 300, milliseconds=250)):
        for _ in range(3):
            catalog.add("images", download_time=moment, file_size=FILE)
    times = times_of(catalog)
    inside = {lid for lid, moment in times.items() if since <= moment < until}
    assert len(inside) == 606
    syncd = Syncd(tmp_path, simulated(catalog))
    first = syncd.sync("--media", "images", env={"SYNCD_SYNC__SINCE": iso(until)})
    assert first.returncode == 0, first.stderr
    mark = watermark(syncd)
    newer = set(recorded(syncd))
    assert newer == {lid for lid, moment in times.items() if moment >= until}

    done = syncd.run(
        "backfill", "--since", iso(since), "--until", iso(until), "--json", "--no-progress"
    )
    assert done.returncode == 0, done.stderr
    assert recorded(syncd) == newer | inside
    assert stored_licenses(syncd) == newer | inside
    assert done.summary["new_licenses"] == len(inside)
    assert watermark(syncd) == mark
    windows = [r for r in syncd.sim.list_requests("images") if query(r, "end_date")]
    assert all(query(r, "start_date") == iso(since) for r in windows)
    assert len(windows) <= 4  # about one request per 200 licenses of the range
    assert "backfill" in [row[0] for row in runs(syncd)]

    # the next catch-up costs one list request per stream
    before = len(syncd.sim.api_requests())
    again = syncd.sync("--json", "--no-progress")
    assert again.returncode == 0, again.stderr
    assert again.summary["new_licenses"] == 0
    sent = requests_by_kind(syncd.sim, before)
    assert sent["list"] == len(LICENSE_STREAMS) and "details" not in sent, sent


def test_backfill_walks_more_than_a_page_of_licenses_in_one_second(tmp_path, simulated):
    catalog = history(700, ties=450)  # 250 an hour apart, then 450 in one second
    syncd = Syncd(tmp_path, simulated(catalog))
    done = syncd.run("backfill", "--media", "images", "--json", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert recorded(syncd) == set(times_of(catalog))
    assert done.summary["downloaded"] == 700


def test_backfill_without_a_range_walks_the_whole_history(tmp_path, simulated):
    catalog = history(450)
    syncd = Syncd(tmp_path, simulated(catalog))
    done = syncd.run("backfill", "--media", "images", "--json", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert recorded(syncd) == set(times_of(catalog))
    assert watermark(syncd) is None  # backfill keeps apart from the catch-up's state
    # finished: the same backfill again walks the range anew (and finds nothing new)
    again = syncd.run("backfill", "--media", "images", "--json", "--no-progress")
    assert again.returncode == 0, again.stderr
    assert again.summary["licenses_seen"] == 450 and again.summary["new_licenses"] == 0


def runs(syncd: Syncd) -> list[tuple]:
    with sqlite3.connect(syncd.db_path) as db:
        return db.execute("select command, outcome from runs order by id").fetchall()


def checkpoint(syncd: Syncd) -> tuple | None:
    with sqlite3.connect(syncd.db_path) as db:
        return db.execute(
            "select checkpoint, fixed_until, paged_at, finished_at from backfill_state"
        ).fetchone()


def test_a_backfill_killed_while_paging_resumes_at_its_checkpoint(tmp_path, simulated):
    catalog = history(1200)
    sim = simulated(catalog, latency_ms=120)
    syncd = Syncd(tmp_path, sim)
    process = syncd.start("backfill", "--media", "images", "--json", "--no-progress")
    deadline = time.monotonic() + 60
    while len(sim.list_requests("images")) < 3 and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    time.sleep(0.3)  # the third window's answer is recorded
    sigkill(process)
    mark = checkpoint(syncd)
    assert mark is not None and mark[0] < mark[1] and mark[2] is None
    seen_before = len(sim.list_requests("images"))
    done = syncd.run("backfill", "--media", "images", "--json", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert recorded(syncd) == stored_licenses(syncd) == set(times_of(catalog))
    resumed = sim.list_requests("images")[seen_before:]
    # the walk went on below the checkpoint: it did not start again from the top
    assert query(resumed[0], "end_date") == mark[0].replace(" ", "T")[:19] + "Z"
    assert len(resumed) <= 7 - 2
    assert checkpoint(syncd)[3] is not None  # finished


def stored_licenses_so_far(syncd: Syncd) -> set[str]:
    if not syncd.db_path.exists():
        return set()
    try:
        return stored_licenses(syncd)
    except sqlite3.OperationalError:  # no schema yet
        return set()


def test_a_backfill_killed_while_fetching_fetches_no_finished_file_again(tmp_path, simulated):
    catalog = history(60)
    sim = simulated(catalog, latency_ms=60)
    syncd = Syncd(tmp_path, sim)
    process = syncd.start("backfill", "--media", "images", "--no-progress")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(stored_licenses_so_far(syncd)) < 12:
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    sigkill(process)
    before = set(stored_licenses(syncd))  # recorded as stored: finished
    assert 12 <= len(before) < 60
    posts = len(sim.api_requests("POST"))
    lists = len(sim.list_requests("images"))
    done = syncd.run("backfill", "--media", "images", "--json", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert stored_licenses(syncd) == set(times_of(catalog))
    refetched = {
        r.path.split("/")[-2] for r in sim.api_requests("POST")[posts:]
    }  # /v2/images/licenses/{id}/downloads
    assert not refetched & before
    assert len(refetched) == 60 - len(before)
    assert len(sim.list_requests("images")) == lists  # paging had finished: no list request


def test_a_backfill_while_a_sync_holds_the_storage_exits_75(tmp_path, simulated):
    catalog = Catalog(seed=3)
    for n in range(12):
        catalog.add("videos", download_time=T0 + timedelta(hours=n), file_size=3 << 20)
    sim = simulated(catalog, latency_ms=150)
    syncd = Syncd(tmp_path, sim)
    # 36 MiB at 8 MB/s: the sync still holds the storage well after the backfill has tried
    syncd.env["SYNCD_SYNC__BWLIMIT"] = "8MB"
    first = syncd.start_until_stored(1, "sync", "--json", "--no-progress", "--media", "videos")
    del syncd.env["SYNCD_SYNC__BWLIMIT"]
    done = syncd.run("backfill", "--json", "--no-progress", "--media", "videos")
    assert first.poll() is None, "the sync ended before the backfill tried"
    assert done.returncode == 75, done.stderr
    assert "another syncd run" in done.stderr
    first.communicate(timeout=120)
    assert first.returncode == 0
    # the sync's own requests only (it looks ahead, so how many it sent while the backfill ran
    # is timing): its one list page, one redownload per file, and no list or redownload of
    # the backfill's
    assert len(sim.list_requests("videos")) == 1
    redownloads = sim.api_requests("POST")
    assert len(redownloads) == 12 and len({r.path for r in redownloads}) == 12


@pytest.mark.parametrize(
    "args",
    [
        ("--since", "last tuesday"),
        ("--until", "2025-13-01"),
        ("--since", "2025-02-01", "--until", "2025-01-01"),
        ("--since", "2025-01-01", "--until", "2025-01-01T00:00:00Z"),
    ],
)
def test_a_bad_backfill_range_is_a_usage_error_that_changes_nothing(tmp_path, simulated, args):
    syncd = Syncd(tmp_path, simulated(history(5)))
    done = syncd.run("backfill", *args)
    assert done.returncode == 2
    assert "usage: syncd backfill" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("syncd backfill: error: ")
    assert not syncd.db_path.exists() and not syncd.root.exists()
    assert syncd.sim.api_requests() == []


def test_a_dry_run_backfill_records_nothing(tmp_path, simulated):
    catalog = history(250)
    syncd = Syncd(tmp_path, simulated(catalog))
    assert syncd.sync("--media", "images", env={"SYNCD_SYNC__SINCE": "now"}).returncode == 0
    done = syncd.run("backfill", "--media", "images", "--dry-run", "--json", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert done.summary["planned"] == 250 and done.summary["new_licenses"] == 250
    assert recorded(syncd) == set() and syncd.stored_files() == {}
    assert checkpoint(syncd) is None


def test_backfill_writes_its_metrics_file_with_the_backfill_job(tmp_path, simulated):
    syncd = Syncd(tmp_path, simulated(history(20)))
    path = tmp_path / "syncd.prom"
    done = syncd.run("backfill", "--media", "images", "--no-progress", "--metrics-file", str(path))
    assert done.returncode == 0, done.stderr
    text = path.read_text()
    assert 'syncd_job_runs_total{job="backfill",outcome="success"} 1.0' in text
    assert 'syncd_files_downloaded_total{media_type="images"} 20.0' in text


# --- the window rule, one function --------------------------------------------------------------


def test_a_page_outside_the_window_asked_for_is_refused():
    stream = LICENSE_STREAMS["images"]
    end = T0 + timedelta(days=1)
    from syncd.api.records import parse_license_page

    def page(moment: datetime) -> LicensePage:
        item = {
            "id": "i1",
            "download_time": moment.isoformat(),
            "license": "standard",
            "image": {"id": "1", "format": {"size": "huge"}},
        }
        return parse_license_page(
            {"data": [item], "page": 1, "per_page": 200, "total_count": 1}, "images", "image"
        )

    _check_inside(page(end - timedelta(seconds=1)), stream, T0, end)
    with pytest.raises(RangeIgnored, match="outside the range"):
        _check_inside(page(end), stream, T0, end)
    with pytest.raises(RangeIgnored):
        _check_inside(page(T0 - timedelta(microseconds=1)), stream, T0, end)
    assert whole_second(T0 + timedelta(milliseconds=999)) == T0
