"""`syncd sync` end to end, against the simulator over real HTTP, as a subprocess."""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import time
from datetime import UTC

import pytest

from syncd.simulator import Catalog, Simulator
from tests.conftest import (
    TOKEN,
    Syncd,
    file_catalog,
    first_pass_updated_requests,
    requests_by_kind,
    sigkill,
    slow_simulator,
    steady_update_windows,
)

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


FILE_KEYS = {"key", "size_bytes", "sha256"}


def expected_sidecar(sim: Simulator, stream: str, media_id: str) -> dict:
    """The sidecar CONTRACT section 4 asks for, built from the simulator's catalog alone:
    every license of the asset with the values the API served, and one file per asset and size
    that can be redownloaded."""
    licenses = [lic for lic in sim.catalog.history(stream) if lic.media_id == media_id]
    assert licenses, f"{stream}/{media_id} is not in the catalog"
    files = {}
    for lic in licenses:
        if lic.is_downloadable is not False and not stream.startswith("editorial"):
            key = expected_key(sim, lic)
            files[key] = {
                "key": key,
                "size_bytes": sim.expected_size(stream, media_id, lic.size),
                "sha256": sim.expected_sha256(stream, media_id, lic.size),
            }
    return {
        "media_type": stream,
        "media_id": media_id,
        "status": "active",
        "licenses": {
            lic.id: {
                "license_id": lic.id,
                "license": lic.license,
                "size": lic.size or "original",
                "format": lic.format,
                "download_time": lic.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "subscription_id": lic.subscription_id,
                "username": lic.username,
                "is_downloadable": lic.is_downloadable,
                "metadata": lic.metadata,
            }
            for lic in licenses
        },
        "files": [files[key] for key in sorted(files)],
        # sync.details is on by default: the asset's details as the API serves them
        "details": sim.catalog.details(stream, media_id),
    }


def assert_sidecar_matches_catalog(syncd: Syncd, stream: str, media_id: str) -> None:
    """One asset's metadata.json, field by field, against what the simulator served; every
    file it lists is in storage with those bytes."""
    where = f"{stream}/{media_id}/metadata.json"
    path = syncd.root / stream / media_id / "metadata.json"
    assert path.is_file(), f"{where} is missing"
    doc = json.loads(path.read_text())
    want = expected_sidecar(syncd.sim, stream, media_id)
    assert set(doc) == SIDECAR_KEYS, where
    for name in ("media_type", "media_id", "status", "details"):
        assert doc[name] == want[name], (where, name)
    ids = [entry["license_id"] for entry in doc["licenses"]]
    assert len(ids) == len(set(ids)), f"{where}: a license listed twice"
    assert set(ids) == set(want["licenses"]), where
    for entry in doc["licenses"]:
        assert set(entry) == LICENSE_KEYS, (where, entry)
        expected = want["licenses"][entry["license_id"]]
        for name in sorted(LICENSE_KEYS):
            assert entry[name] == expected[name], (where, entry["license_id"], name)
    for entry in doc["files"]:
        assert set(entry) == FILE_KEYS, (where, entry)
    assert sorted(doc["files"], key=lambda f: f["key"]) == want["files"], where
    for entry in doc["files"]:
        stored = syncd.root / entry["key"]
        assert stored.stat().st_size == entry["size_bytes"], (where, entry["key"])
        assert sha256_of(stored) == entry["sha256"], (where, entry["key"])


def assert_every_sidecar_matches_catalog(syncd: Syncd, streams=STREAMS) -> int:
    """Every asset of ``streams`` in the catalog has a complete, correct sidecar, and there is
    no other sidecar. Returns how many were checked."""
    assets = {
        (stream, lic.media_id) for stream in streams for lic in syncd.sim.catalog.history(stream)
    }
    for stream, media_id in sorted(assets):
        assert_sidecar_matches_catalog(syncd, stream, media_id)
    on_disk = {
        p.parent.relative_to(syncd.root).as_posix() for p in syncd.root.rglob("metadata.json")
    }
    assert on_disk == {f"{stream}/{media_id}" for stream, media_id in assets}
    return len(assets)


# --- first run, second run -------------------------------------------------------------------


def test_first_sync_stores_every_file_with_sidecars_and_the_contract_summary(syncd):
    done = syncd.sync()
    updated = first_pass_updated_requests()
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
        # CONTRACT 2's 5 list + 9 redownload requests; with the default sync.details and
        # updates.enabled also one detail request per media type (one per editorial asset)
        # and the first /updated pass: the 3-day windows for images and videos that a day
        # of lookback takes (one or two by the time of day), one cursor page for editorial
        "api_requests": 14 + 4 + updated,
    }
    assert requests_by_kind(syncd.sim) == {
        "list": 5,
        "redownload": 9,
        "details": 4,
        "updated": updated,
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
            assert doc["status"] == "active"
            assert doc["details"] == syncd.sim.catalog.details(stream, lic.media_id) is not None
            entry = next(e for e in doc["licenses"] if e["license_id"] == lic.id)
            assert set(entry) == LICENSE_KEYS
            assert entry["is_downloadable"] == lic.is_downloadable
            assert entry["metadata"] == lic.metadata
            assert entry["download_time"].endswith("Z") and len(entry["download_time"]) == 20
            for f in doc["files"]:
                assert sha256_of(syncd.root / f["key"]) == f["sha256"]
                assert (syncd.root / f["key"]).stat().st_size == f["size_bytes"]
    # every field of every sidecar, one by one, against what the simulator served
    assert assert_every_sidecar_matches_catalog(syncd) == 10
    files_listed = [
        f["key"]
        for p in syncd.root.rglob("metadata.json")
        for f in json.loads(p.read_text())["files"]
    ]
    assert sorted(files_listed) == sorted(syncd.stored_files())
    huge = syncd.sidecar("images", "59656357")
    assert [f["key"] for f in huge["files"]] == [
        "images/59656357/huge.jpg",
        "images/59656357/medium.jpg",
    ]
    assert {
        (e["license_id"], e["license"], e["subscription_id"], e["username"])
        for e in huge["licenses"]
    } == {
        ("i4117504982", "standard", "s8906043", "jsmith"),
        ("i4190467223", "standard", "s8906043", "jsmith"),
        ("i5220931177", "standard", "s8906043", "jsmith"),
    }

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
    # the license not fetched is recorded stored under the same file, not left for later
    with sqlite3.connect(syncd.db_path) as db:
        rows = db.execute(
            "select license_id, status, file_key from licenses "
            "where license_id in ('i4117504982', 'i5220931177') order by license_id"
        ).fetchall()
        assert rows == [
            ("i4117504982", "stored", "images/59656357/huge.jpg"),
            ("i5220931177", "stored", "images/59656357/huge.jpg"),
        ]
        assert db.execute(
            "select count(*) from licenses where status in ('pending', 'failed')"
        ).fetchone() == (0,)
    assert_sidecar_matches_catalog(syncd, "images", "59656357")


def test_a_second_license_for_a_stored_asset_and_size_counts_already_present(syncd):
    first = syncd.sync()
    assert first.returncode == 0, first.stderr
    assert first.summary["already_present"] == 1 and first.summary["downloaded"] == 9
    added = syncd.sim.add_license("images", media_id="1079756147", size="vector")
    syncd.sim.reset_log()
    second = syncd.sync()
    assert second.returncode == 0, second.stderr
    assert second.summary["new_licenses"] == 1
    assert second.summary["already_present"] == 1 and second.summary["downloaded"] == 0
    assert syncd.sim.api_requests("POST") == [] and syncd.sim.download_requests() == []
    with sqlite3.connect(syncd.db_path) as db:
        assert db.execute(
            "select status, file_key from licenses where license_id = ?", (added["id"],)
        ).fetchone() == ("stored", "images/1079756147/vector.eps")
    assert_sidecar_matches_catalog(syncd, "images", "1079756147")


def test_second_run_downloads_nothing_and_sends_one_list_request_per_stream(syncd):
    assert syncd.sync().returncode == 0
    syncd.sim.reset_log()
    done = syncd.sync()
    assert done.returncode == 0, done.stderr
    assert done.summary["downloaded"] == 0 and done.summary["new_licenses"] == 0
    # one list request per stream, no detail request (every asset has its details), one
    # window of each /updated stream (two when the hour before the pass spans midnight UTC)
    windows = steady_update_windows()
    assert windows == 1
    assert done.summary["api_requests"] == 5 + 2 * windows + 1
    assert syncd.sim.download_requests() == []
    for stream in STREAMS:
        assert len(syncd.sim.list_requests(stream)) == 1, stream
    assert requests_by_kind(syncd.sim) == {"list": 5, "updated": 2 * windows + 1}


def test_k_new_licenses_cost_ceil_k_plus_one_over_200_list_requests(syncd):
    assert syncd.sync().returncode == 0
    k = 250
    for _ in range(k):
        syncd.sim.add_license("images", file_size=2048)
    syncd.sim.reset_log()
    windows = steady_update_windows()
    done = syncd.sync()
    assert done.returncode == 0, done.stderr
    assert len(syncd.sim.list_requests("images")) == math.ceil((k + 1) / 200) == 2
    assert len(syncd.sim.list_requests("videos")) == 1
    assert done.summary["new_licenses"] == k and done.summary["downloaded"] == k
    # + the details of k new images in ceil(k / 100) requests, and one /updated window each
    assert done.summary["api_requests"] == 2 + 4 + k + math.ceil(k / 100) + 2 * windows + 1


def watermark_in_db(syncd: Syncd, stream: str) -> str | None:
    with sqlite3.connect(syncd.db_path) as db:
        row = db.execute(
            "select watermark_license_id from stream_state where stream = ? and team_history = 0",
            (stream,),
        ).fetchone()
    return row[0] if row else None


def paging_catalog(seed: int, count: int) -> Catalog:
    """``count`` image licenses of distinct assets, most of them not downloadable (the paging
    is what is under test; a tenth, without ``is_downloadable``, are fetched)."""
    return Catalog.generate(
        seed=seed, counts={"images": count}, sizes=[512], twin_ratio=0, not_downloadable_ratio=1
    )


def add_images(sim: Simulator, count: int) -> int:
    """``count`` new image licenses at the head, one in ten downloadable; returns how many
    are."""
    for n in range(count):
        sim.add_license("images", file_size=512, is_downloadable=n % 10 == 0)
    return len(range(0, count, 10))


def fetchable(sim: Simulator) -> int:
    return sum(lic.is_downloadable is not False for lic in sim.catalog.history("images"))


def test_a_run_pages_exactly_down_to_the_page_holding_the_watermark(tmp_path):
    catalog = paging_catalog(21, 201)
    with Simulator(catalog, token=TOKEN) as sim:
        syncd = Syncd(tmp_path, sim)
        first = syncd.sync("--media", "images")
        assert first.returncode == 0, first.stderr
        assert sim.pages_requested("images") == [1, 2]  # 200 + 1: the short page is the end
        assert first.summary["new_licenses"] == 201
        assert 0 < first.summary["downloaded"] == fetchable(sim) < 201
        assert watermark_in_db(syncd, "images") == catalog.history("images")[0].id

        # 210 new: the watermark is the 11th license of page 2 of 3
        downloadable = add_images(sim, 210)
        sim.reset_log()
        second = syncd.sync("--media", "images")
        assert second.returncode == 0, second.stderr
        assert sim.pages_requested("images") == [1, 2]
        assert second.summary["licenses_seen"] == 400
        assert second.summary["new_licenses"] == 210
        assert second.summary["downloaded"] == downloadable == 21
        # the details of 210 new images in 3 requests, one /updated window
        windows = steady_update_windows()
        assert requests_by_kind(sim) == {
            "list": 2,
            "redownload": 21,
            "details": 3,
            "updated": windows,
        }
        assert second.summary["api_requests"] == 2 + 21 + 3 + windows
        assert watermark_in_db(syncd, "images") == catalog.history("images")[0].id

        # 199 new: the watermark is the last license of page 1; page 2 is not asked for
        downloadable = add_images(sim, 199)
        sim.reset_log()
        third = syncd.sync("--media", "images")
        assert third.returncode == 0, third.stderr
        assert sim.pages_requested("images") == [1]
        assert third.summary["new_licenses"] == 199
        assert third.summary["downloaded"] == downloadable

        # nothing new, though page 1 is full: one request
        sim.reset_log()
        fourth = syncd.sync("--media", "images")
        assert fourth.returncode == 0, fourth.stderr
        assert sim.pages_requested("images") == [1]
        windows = steady_update_windows()
        assert requests_by_kind(sim) == {"list": 1, "updated": windows}
        assert len(sim.api_requests()) == fourth.summary["api_requests"] == 1 + windows
        assert len(syncd.stored_files()) == fetchable(sim)
        assert_every_file_correct(syncd)


def test_a_stream_failing_on_page_2_keeps_its_old_watermark_and_the_next_run_pages_it_again(
    tmp_path,
):
    catalog = paging_catalog(22, 201)
    with Simulator(catalog, token=TOKEN) as sim:
        syncd = Syncd(tmp_path, sim)
        assert syncd.sync("--media", "images").returncode == 0
        old_head = catalog.history("images")[0].id
        add_images(sim, 250)  # the watermark is now the 51st license of page 2 of 3
        sim.on_list_page(
            "images",
            1,
            lambda s: s.add_fault("GET", r"^/v2/images/licenses$", status=503, times=1),
        )
        sim.reset_log()
        failed = syncd.sync("--media", "images", env={"SYNCD_API__MAX_RETRIES": "0"})
        assert failed.returncode == 1
        assert "images" in failed.stderr and "503" in failed.stderr
        assert sim.pages_requested("images") == [1, 2]
        assert failed.summary["new_licenses"] == 200 and failed.summary["downloaded"] == 20
        assert watermark_in_db(syncd, "images") == old_head

        sim.reset_log()
        again = syncd.sync("--media", "images")
        assert again.returncode == 0, again.stderr
        assert sim.pages_requested("images") == [1, 2]  # the same ground, down to the watermark
        assert again.summary["new_licenses"] == 50 and again.summary["downloaded"] == 5
        assert watermark_in_db(syncd, "images") == catalog.history("images")[0].id
        assert len(syncd.stored_files()) == fetchable(sim)
        assert_every_file_correct(syncd)


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


@pytest.mark.filesystem_only  # S3: tests/test_s3.py kills a run in a multipart upload
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
        # every asset with a recorded license has its whole, right sidecar, whichever run
        # fetched its file
        assert assert_every_sidecar_matches_catalog(syncd, ("videos",)) == 40
        with sqlite3.connect(syncd.db_path) as db:
            assert db.execute(
                "select count(*) from assets a where not exists (select 1 from sidecars s "
                "where s.media_type = a.media_type and s.media_id = a.media_id "
                "and s.kind = 'json' and s.sha256 is not null)"
            ).fetchone() == (0,)
            assert db.execute(
                "select status, count(*) from licenses group by status"
            ).fetchall() == [("stored", 40)]


def test_a_sidecar_left_unwritten_is_written_by_the_next_run(syncd):
    assert syncd.sync().returncode == 0
    # as a run killed after the file landed and before the sidecar was written leaves it
    syncd.remove("images/1079756147/metadata.json")
    syncd.overwrite("videos/2140697/metadata.json", b"{}")  # a write the ledger never confirmed
    with sqlite3.connect(syncd.db_path) as db:
        db.execute(
            "update sidecars set sha256 = null where (media_type, media_id) in "
            "(values ('images', '1079756147'), ('videos', '2140697'))"
        )
    syncd.sim.reset_log()
    done = syncd.sync()
    assert done.returncode == 0, done.stderr
    assert done.summary["new_licenses"] == 0 and done.summary["downloaded"] == 0
    assert syncd.sim.api_requests("POST") == []
    assert_sidecar_matches_catalog(syncd, "images", "1079756147")
    assert_sidecar_matches_catalog(syncd, "videos", "2140697")
    with sqlite3.connect(syncd.db_path) as db:
        digests = dict(
            db.execute(
                "select a.media_type || '/' || a.media_id, s.sha256 from assets a left join "
                "sidecars s on s.media_type = a.media_type and s.media_id = a.media_id "
                "and s.kind = 'json'"
            ).fetchall()
        )
    assert len(digests) == 10 and None not in digests.values()
    for asset, digest in digests.items():
        assert sha256_of(syncd.root / asset / "metadata.json") == digest, asset


def assert_every_file_correct_so_far(syncd: Syncd) -> None:
    for key, path in syncd.stored_files().items():
        stream, media_id, rest = key.split("/")
        assert sha256_of(path) == syncd.sim.expected_sha256(stream, media_id, rest.split(".")[0])


# --- hostile and broken input ----------------------------------------------------------------


def test_hostile_media_id_fails_that_license_only_and_writes_nothing_outside_the_root(tmp_path):
    catalog = Catalog.example()
    image = catalog.add("images", media_id="../../x", size="huge")
    video = catalog.add("videos", media_id="..", size="sd")
    with Simulator(catalog, token=TOKEN) as sim:
        syncd = Syncd(tmp_path, sim)
        done = syncd.sync()
        assert done.returncode == 1
        assert done.summary["failed"] == 2
        assert done.summary["downloaded"] == 9
        assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()
        # no redownload was asked for either hostile license; the 9 others were
        posts = [r.path for r in sim.api_requests("POST")]
        assert len(posts) == 9
        for bad in (image, video):
            assert all(bad.id not in path for path in posts), bad.id
            assert f"/v2/{bad.stream}/licenses/{bad.id}/downloads" not in posts
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
        with sqlite3.connect(syncd.db_path) as db:
            failed = db.execute(
                "select license_id from licenses where status='failed' order by license_id"
            ).fetchall()
        assert failed == sorted([(image.id,), (video.id,)])


def test_bad_config_exits_2_with_one_line_and_changes_nothing(syncd):
    done = syncd.sync(env={"SYNCD_SYNC__CONCURRENCY": "lots"})
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "sync.concurrency" in done.stderr
    assert not syncd.db_path.exists() and not syncd.root.exists()
    assert syncd.sim.requests == []


def test_missing_token_is_a_config_error_that_creates_no_database_and_no_storage(syncd):
    done = syncd.sync(env={"SHUTTERSTOCK_API_TOKEN": ""})
    assert done.returncode == 2 and "api.token" in done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert syncd.sim.requests == []
    assert not syncd.db_path.exists()
    assert not syncd.root.exists()
    assert sorted(p.name for p in syncd.home.iterdir()) == []


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


@pytest.mark.filesystem_only
def test_unwritable_storage_root_exits_4_before_any_request(syncd, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    done = syncd.sync(env={"SYNCD_STORAGE__PATH": str(blocker / "dam")})
    assert done.returncode == 4, done.stderr
    assert "storage" in done.stderr or "not-a-folder" in done.stderr
    assert syncd.sim.requests == []


@pytest.mark.filesystem_only
def test_a_storage_root_whose_partial_folder_cannot_be_written_exits_4_before_any_request(
    syncd,
):
    from syncd.storage.filesystem import PARTIAL_DIR

    # the root itself is a writable folder; only writing a file where partial files go fails
    syncd.root.mkdir()
    (syncd.root / PARTIAL_DIR).write_text("not a folder")
    done = syncd.sync()
    assert done.returncode == 4, done.stderr
    assert str(syncd.root) in done.stderr
    assert syncd.sim.requests == []
    assert syncd.stored_files() == {}


def test_html_error_page_on_a_list_fails_that_stream_and_the_others_finish(syncd):
    syncd.sim.add_fault("GET", r"^/v2/videos/licenses$", action="html", status=502, times=10)
    done = syncd.sync()
    assert done.returncode == 1
    assert "videos" in done.stderr and "502" in done.stderr
    assert done.summary["downloaded"] == 6
    # 3 attempts at the videos list, 4 other lists, 6 redownloads, the details of the
    # images, audio and editorial image held (none of videos), the first /updated pass
    updated = first_pass_updated_requests()
    assert requests_by_kind(syncd.sim) == {
        "list": 7,
        "redownload": 6,
        "details": 3,
        "updated": updated,
    }
    assert done.summary["api_requests"] == 7 + 6 + 3 + updated


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
    updated = first_pass_updated_requests()
    assert requests_by_kind(syncd.sim) == {
        "list": 6,
        "redownload": 10,
        "details": 4,
        "updated": updated,
    }
    assert done.summary["api_requests"] == 14 + 2 + 4 + updated
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
