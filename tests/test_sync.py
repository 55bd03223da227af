"""`syncd sync` end to end, against the simulator over real HTTP, as a subprocess."""

from __future__ import annotations

import hashlib
import math
import sqlite3
import time

from syncd.simulator import Catalog, Simulator
from tests.conftest import TOKEN, Syncd, file_catalog, sigkill, slow_simulator

STREAMS = ("images", "videos", "audio", "editorial/images", "editorial/videos")
SIDECAR_KEYS = {"media_type", "media_id", "status", "licenses", "files", "details"}
LICENSE_KEYS = {
    "license_id",
    "license",
    "size",
    "format",
    "download_time",
    "subscription_id",
    "username",
    "is_downloadable",
    "metadata",
}


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def expected_key(sim: Simulator, lic) -> str:
    return f"{lic.stream}/{lic.media_id}/{lic.file.size}{sim.file_ext(lic.stream, lic.size)}"


def assert_every_file_correct(syncd: Syncd) -> None:
    """Everything under a final key is complete and right, and every downloadable license's
    file is there."""
    sim = syncd.sim
    stored = syncd.stored_files()
    for key, path in stored.items():
        media_type, _, rest = key.rpartition("/")
        stream, media_id = media_type.rsplit("/", 1)
        size = rest.split(".")[0]
        assert sha256_of(path) == sim.expected_sha256(stream, media_id, size), key
    for stream in STREAMS:
        for lic in sim.catalog.history(stream):
            downloadable = lic.is_downloadable is not False and not stream.startswith("editorial")
            if downloadable:
                assert expected_key(sim, lic) in stored, lic.id


# --- first run, second run -------------------------------------------------------------------


def test_first_sync_stores_every_file_with_sidecars_and_the_contract_summary(syncd):
    done = syncd.sync()
    assert done.returncode == 0, done.stderr
    assert done.summary == {
        **done.summary,
        "licenses_seen": 12,
        "new_licenses": 12,
        "downloaded": 9,
        "already_present": 1,
        "relicensed": 0,
        "credits_spent": 0,
        "credits_planned": 0,
        "unavailable": 2,
        "failed": 0,
        "api_requests": 14,
    }
    assert done.summary["bytes_downloaded"] == sum(
        p.stat().st_size for p in syncd.stored_files().values()
    )
    assert_every_file_correct(syncd)
    assert len(syncd.stored_files()) == 9

    for stream in STREAMS:
        for lic in syncd.sim.catalog.history(stream):
            doc = syncd.sidecar(stream, lic.media_id)
            assert set(doc) == SIDECAR_KEYS
            assert doc["status"] == "active" and doc["details"] is None
            entry = next(e for e in doc["licenses"] if e["license_id"] == lic.id)
            assert set(entry) == LICENSE_KEYS
            assert entry["is_downloadable"] == lic.is_downloadable
            assert entry["metadata"] == lic.metadata
            assert entry["download_time"].endswith("Z") and len(entry["download_time"]) == 20
            for f in doc["files"]:
                assert sha256_of(syncd.root / f["key"]) == f["sha256"]
                assert (syncd.root / f["key"]).stat().st_size == f["size_bytes"]

    editorial = syncd.sidecar("editorial/images", "9804979n")
    assert editorial["files"] == []
    assert editorial["licenses"][0]["size"] == "original"
    assert editorial["licenses"][0]["format"] is None
    assert editorial["licenses"][0]["is_downloadable"] is False
    first = syncd.sidecar("images", "59656357")["licenses"][0]
    assert first["download_time"] == "2016-10-03T19:58:18Z"


def test_same_asset_and_size_licensed_twice_is_one_file_with_both_licenses(syncd):
    assert syncd.sync().returncode == 0
    doc = syncd.sidecar("images", "59656357")
    huge = [e["license_id"] for e in doc["licenses"] if e["size"] == "huge"]
    assert sorted(huge) == ["i4117504982", "i5220931177"]
    assert [f["key"] for f in doc["files"] if "huge" in f["key"]] == ["images/59656357/huge.jpg"]
    redownloads = [r.path for r in syncd.sim.api_requests("POST")]
    assert len([p for p in redownloads if "i4117504982" in p or "i5220931177" in p]) == 1


def test_second_run_downloads_nothing_and_sends_one_list_request_per_stream(syncd):
    assert syncd.sync().returncode == 0
    syncd.sim.reset_log()
    done = syncd.sync()
    assert done.returncode == 0, done.stderr
    assert done.summary["downloaded"] == 0 and done.summary["new_licenses"] == 0
    assert done.summary["api_requests"] == 5
    assert syncd.sim.download_requests() == []
    for stream in STREAMS:
        assert len(syncd.sim.list_requests(stream)) == 1, stream
    assert len(syncd.sim.api_requests()) == 5


def test_k_new_licenses_cost_ceil_k_plus_one_over_200_list_requests(syncd):
    assert syncd.sync().returncode == 0
    k = 250
    for _ in range(k):
        syncd.sim.add_license("images", file_size=2048)
    syncd.sim.reset_log()
    done = syncd.sync()
    assert done.returncode == 0, done.stderr
    assert len(syncd.sim.list_requests("images")) == math.ceil((k + 1) / 200) == 2
    assert len(syncd.sim.list_requests("videos")) == 1
    assert done.summary["new_licenses"] == k and done.summary["downloaded"] == k
    assert done.summary["api_requests"] == 2 + 4 + k


def test_licenses_inserted_at_the_head_while_paging_are_neither_skipped_nor_stored_twice(tmp_path):
    catalog = file_catalog(7, "images", 450, 1024)
    with Simulator(catalog, token=TOKEN) as sim:
        syncd = Syncd(tmp_path, sim)
        arrived = []
        sim.on_list_page(
            "images",
            1,
            lambda s: arrived.extend(s.add_license("images", file_size=1024) for _ in range(30)),
        )
        first = syncd.sync("--media", "images")
        assert first.returncode == 0, first.stderr
        assert first.summary["licenses_seen"] == 450
        assert first.summary["new_licenses"] == 450
        assert first.summary["downloaded"] == 450
        assert len(arrived) == 30
        posts = [r.path for r in sim.api_requests("POST")]
        assert len(posts) == len(set(posts)) == 450

        sim.reset_log()
        second = syncd.sync("--media", "images")
        assert second.returncode == 0, second.stderr
        assert second.summary["new_licenses"] == 30 and second.summary["downloaded"] == 30
        assert len(sim.list_requests("images")) == 1
        assert_every_file_correct(syncd)
        with sqlite3.connect(syncd.db_path) as db:
            assert db.execute(
                "select count(*), count(distinct license_id) from licenses"
            ).fetchone() == (480, 480)
            assert db.execute("select count(*) from files").fetchone() == (480,)


# --- crashes ---------------------------------------------------------------------------------


def test_sigkill_mid_run_then_rerun_leaves_everything_correct_and_nothing_partial(tmp_path):
    catalog = file_catalog(3, "videos", 40, 3 << 20)
    with slow_simulator(catalog) as sim:
        syncd = Syncd(tmp_path, sim)
        process = syncd.start("sync", "--no-progress", "--media", "videos")
        deadline = time.monotonic() + 60
        partial_dir = syncd.root / ".syncd-partial"
        while time.monotonic() < deadline:
            if (
                len(syncd.stored_files()) >= 3
                and partial_dir.is_dir()
                and any(partial_dir.iterdir())
            ):
                break
            time.sleep(0.005)
        sigkill(process)
        stored_before = len(syncd.stored_files())
        assert 0 < stored_before < 40, "the kill did not land in the middle of the run"
        assert_every_file_correct_so_far(syncd)

        done = syncd.sync("--media", "videos")
        assert done.returncode == 0, done.stderr
        assert len(syncd.stored_files()) == 40
        assert_every_file_correct(syncd)
        assert not any(partial_dir.iterdir())


def assert_every_file_correct_so_far(syncd: Syncd) -> None:
    for key, path in syncd.stored_files().items():
        stream, media_id, rest = key.split("/")
        assert sha256_of(path) == syncd.sim.expected_sha256(stream, media_id, rest.split(".")[0])


# --- hostile and broken input ----------------------------------------------------------------


def test_hostile_media_id_fails_that_license_only_and_writes_nothing_outside_the_root(tmp_path):
    catalog = Catalog.example()
    catalog.add("images", media_id="../../x", size="huge")
    catalog.add("videos", media_id="..", size="sd")
    with Simulator(catalog, token=TOKEN) as sim:
        syncd = Syncd(tmp_path, sim)
        done = syncd.sync()
        assert done.returncode == 1
        assert done.summary["failed"] == 2
        assert done.summary["downloaded"] == 9
        assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()
        assert all(
            not r.path.startswith("/v2/images/licenses/") or "x" not in r.path
            for r in sim.api_requests("POST")
        )
        outside = [
            p
            for p in tmp_path.rglob("*")
            if p.is_file()
            and not p.is_relative_to(syncd.root)
            and not p.name.startswith("syncd.db")
        ]
        assert outside == []
        with sqlite3.connect(syncd.db_path) as db:
            reasons = db.execute("select reason from licenses where status='failed'").fetchall()
        assert len(reasons) == 2 and all("not a safe key part" in r[0] for r in reasons)


def test_bad_config_exits_2_with_one_line_and_changes_nothing(syncd):
    done = syncd.sync(env={"SYNCD_SYNC__CONCURRENCY": "lots"})
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "sync.concurrency" in done.stderr
    assert not syncd.db_path.exists() and not syncd.root.exists()
    assert syncd.sim.requests == []


def test_missing_token_is_a_config_error(syncd):
    done = syncd.sync(env={"SHUTTERSTOCK_API_TOKEN": ""})
    assert done.returncode == 2 and "api.token" in done.stderr
    assert syncd.sim.requests == []


def test_401_stops_the_run_with_exit_3(syncd):
    done = syncd.sync(env={"SHUTTERSTOCK_API_TOKEN": "wrong-token"})
    assert done.returncode == 3
    assert "401" in done.stderr
    assert len(syncd.sim.api_requests()) == 1
    assert "wrong-token" not in done.stderr + done.stdout


def test_403_on_a_license_list_refuses_that_stream_only_with_exit_3(syncd):
    syncd.sim.add_fault(
        "GET",
        r"^/v2/audio/licenses$",
        status=403,
        body={"message": "Forbidden: missing scope"},
        times=10,
    )
    done = syncd.sync()
    assert done.returncode == 3
    assert "audio" in done.stderr and "refused" in done.stderr
    assert done.summary["downloaded"] == 7


def test_unwritable_storage_root_exits_4_before_any_request(syncd, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    done = syncd.sync(env={"SYNCD_STORAGE__PATH": str(blocker / "dam")})
    assert done.returncode == 4, done.stderr
    assert "storage" in done.stderr or "not-a-folder" in done.stderr
    assert syncd.sim.requests == []


def test_html_error_page_on_a_list_fails_that_stream_and_the_others_finish(syncd):
    syncd.sim.add_fault("GET", r"^/v2/videos/licenses$", action="html", status=502, times=10)
    done = syncd.sync()
    assert done.returncode == 1
    assert "videos" in done.stderr and "502" in done.stderr
    assert done.summary["downloaded"] == 6
    assert done.summary["api_requests"] == 3 + 4 + 6


def test_broken_json_on_a_list_fails_that_stream_and_the_others_finish(syncd):
    syncd.sim.add_fault("GET", r"^/v2/images/licenses$", action="badjson", times=3)
    done = syncd.sync()
    assert done.returncode == 1
    assert "images" in done.stderr and "not JSON" in done.stderr
    assert done.summary["downloaded"] == 5
    # the failed stream's watermark did not move: the next run pages it again and catches up
    later = syncd.sync()
    assert later.returncode == 0 and later.summary["downloaded"] == 4


# --- the wire --------------------------------------------------------------------------------


def test_429_and_5xx_are_retried_and_counted(syncd):
    syncd.sim.add_fault("GET", r"^/v2/images/licenses$", status=429, headers={"Retry-After": "1"})
    syncd.sim.add_fault("POST", r"/downloads$", status=503, times=1)
    done = syncd.sync()
    assert done.returncode == 0, done.stderr
    assert done.summary["api_requests"] == 14 + 2
    assert done.summary["downloaded"] == 9


def test_expired_download_url_is_asked_for_again_once(syncd):
    syncd.sim.add_fault("GET", r"^/files/", status=410, times=1)
    done = syncd.sync("--media", "audio")
    assert done.returncode == 0, done.stderr
    assert done.summary["downloaded"] == 2
    assert len(syncd.sim.api_requests("POST")) == 3


def test_broken_transfer_is_retried_and_the_file_is_whole(syncd):
    syncd.sim.add_fault("GET", r"^/files/", action="truncate", times=2)
    done = syncd.sync("--media", "videos")
    assert done.returncode == 0, done.stderr
    assert_every_file_correct_so_far(syncd)
    assert len(syncd.stored_files()) == 3


def test_token_goes_only_to_the_api_and_never_into_logs_database_or_sidecars(syncd):
    syncd.sim.add_fault("GET", r"^/v2/videos/licenses$", status=500, times=1)
    done = syncd.sync("-v", env={"SYNCD_API__MAX_RETRIES": "1"})
    assert done.returncode == 0, done.stderr
    for record in syncd.sim.api_requests():
        assert record.headers["Authorization"] == f"Bearer {TOKEN}"
    for record in syncd.sim.download_requests():
        assert "Authorization" not in record.headers
    assert TOKEN not in done.stdout + done.stderr
    assert TOKEN.encode() not in syncd.db_path.read_bytes()
    for path in syncd.root.rglob("metadata.json"):
        assert TOKEN not in path.read_text()
    assert all(r.headers.get("User-Agent", "").startswith("syncd/") for r in syncd.sim.requests)


def test_dry_run_prints_the_plan_and_records_nothing(syncd):
    done = syncd.sync("--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("would redownload") == 9
    assert done.summary["downloaded"] == 0 and done.summary["new_licenses"] == 12
    assert syncd.sim.api_requests("POST") == [] and syncd.sim.download_requests() == []
    assert not syncd.db_path.exists() and not syncd.root.exists()


def test_status_reports_watermarks_and_counts(syncd):
    syncd.sync()
    done = syncd.run("status", "--json")
    assert done.returncode == 0, done.stderr
    import json

    report = json.loads(done.stdout)
    images = next(s for s in report["streams"] if s["stream"] == "images")
    assert images["watermark_license_id"] == "i5302216985" and images["last_outcome"] == "ok"
    assert report["media"]["images"]["stored"] == 3  # assets, not licenses or files
    assert report["media"]["images"]["unavailable"] == 1
    assert report["media"]["editorial/images"]["unavailable"] == 1
