"""`syncd sync` at the edges: team history, odd bodies, redirects, SIGTERM, a full disk."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from syncd.simulator import Catalog, Simulator
from tests.conftest import TOKEN, Syncd, file_catalog, slow_simulator
from tests.test_sync import assert_every_file_correct_so_far


def test_team_history_is_paged_under_its_own_watermark(tmp_path):
    catalog = Catalog.generate(
        seed=11,
        counts={"images": 30},
        sizes=[1024],
        twin_ratio=0,
        not_downloadable_ratio=0,
        team_users=("akim", "lwong"),
    )
    with Simulator(catalog, token=TOKEN) as sim:
        syncd = Syncd(tmp_path, sim)
        mine = syncd.sync("--media", "images")
        assert mine.returncode == 0, mine.stderr
        own = [lic for lic in catalog.history("images") if lic.username == "jsmith"]
        assert 0 < mine.summary["new_licenses"] == len(own) < 30
        assert all("team_history" not in r.query for r in sim.list_requests("images"))

        sim.reset_log()
        team = syncd.sync("--media", "images", env={"SYNCD_SYNC__TEAM_HISTORY": "true"})
        assert team.returncode == 0, team.stderr
        assert team.summary["licenses_seen"] == 30
        assert team.summary["new_licenses"] == 30 - len(own)
        assert all(r.query.get("team_history") == ["true"] for r in sim.list_requests("images"))

        sim.reset_log()
        again = syncd.sync("--media", "images")  # the own-history watermark is untouched
        assert again.returncode == 0 and again.summary["new_licenses"] == 0
        assert len(sim.list_requests("images")) == 1


def test_license_item_without_download_time_fails_that_stream_clearly(syncd):
    broken = {
        "data": [{"id": "i1", "license": "standard", "image": {"id": "1"}}],
        "page": 1,
        "per_page": 200,
        "total_count": 1,
    }
    syncd.sim.add_fault("GET", r"^/v2/images/licenses$", status=200, body=broken, times=1)
    done = syncd.sync()
    assert done.returncode == 1
    line = next(x for x in done.stderr.splitlines() if x.startswith("syncd: stream images"))
    assert "download_time" in line
    assert done.summary["downloaded"] == 5


def test_download_redirect_to_plain_http_elsewhere_is_refused(syncd):
    syncd.sim.add_fault(
        "GET", r"^/files/", status=302, headers={"Location": "http://198.51.100.7/steal"}, times=1
    )
    done = syncd.sync("--media", "audio")
    assert done.returncode == 1
    assert done.summary["failed"] == 1 and done.summary["downloaded"] == 1
    again = syncd.sync("--media", "audio")  # failed licenses are tried again
    assert again.returncode == 0 and again.summary["downloaded"] == 1


def test_sigterm_during_sync_stops_cleanly_with_143(tmp_path):
    catalog = file_catalog(5, "videos", 60, 2 << 20)
    with slow_simulator(catalog) as sim:
        syncd = Syncd(tmp_path, sim)
        process = syncd.start_until_stored(2, "sync", "--no-progress", "--media", "videos")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 143, stderr
        assert_every_file_correct_so_far(syncd)
        assert syncd.leftovers() == []


@pytest.fixture
def tiny_disk(tmp_path):
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1600k", "tmpfs", str(mountpoint)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.fail(
            f"cannot mount a tmpfs (the tests run as root): {mounted.stderr.decode().strip()}",
            pytrace=False,
        )
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=False)


@pytest.mark.filesystem_only
def test_full_disk_stops_the_run_with_exit_4_and_leaves_only_whole_files(tmp_path, tiny_disk):
    catalog = file_catalog(2, "videos", 6, 700_000)
    with Simulator(catalog, token=TOKEN) as sim:
        syncd = Syncd(tmp_path, sim)
        syncd.root = tiny_disk / "dam"
        done = syncd.sync(
            "--media",
            "videos",
            env={"SYNCD_STORAGE__PATH": str(syncd.root), "SYNCD_SYNC__CONCURRENCY": "1"},
        )
        assert done.returncode == 4, done.stderr
        assert "no space left" in done.stderr
        assert 1 <= len(syncd.stored_files()) <= 2
        assert_every_file_correct_so_far(syncd)
        assert syncd.leftovers() == []


def test_a_page_cut_short_of_total_count_fails_the_stream_and_keeps_the_watermark(tmp_path):
    catalog = file_catalog(13, "images", 450, 512)
    with Simulator(catalog, token=TOKEN) as sim:
        syncd = Syncd(tmp_path, sim)
        # page 2 comes back empty, though the API itself says 450 licenses exist
        sim.on_list_page(
            "images",
            1,
            lambda s: s.add_fault(
                "GET",
                r"^/v2/images/licenses$",
                status=200,
                times=1,
                body={"data": [], "page": 2, "per_page": 200, "total_count": 450},
            ),
        )
        first = syncd.sync("--media", "images")
        assert first.returncode == 1
        assert "total_count" in first.stderr
        assert first.summary["new_licenses"] == 200
        second = syncd.sync("--media", "images")
        assert second.returncode == 0, second.stderr
        assert second.summary["new_licenses"] == 250
        assert first.summary["downloaded"] + second.summary["downloaded"] == 450


def test_errors_in_a_200_list_body_fail_the_stream(syncd):
    syncd.sim.add_fault(
        "GET",
        r"^/v2/videos/licenses$",
        status=200,
        times=3,
        body={"data": [], "errors": [{"message": "internal paging error"}]},
    )
    done = syncd.sync()
    assert done.returncode == 1
    assert "internal paging error" in done.stderr and "videos" in done.stderr


def test_an_overlong_media_id_fails_only_its_license(tmp_path):
    catalog = Catalog.example()
    catalog.add("images", media_id="9" * 300, size="huge")
    with Simulator(catalog, token=TOKEN) as sim:
        syncd = Syncd(tmp_path, sim)
        done = syncd.sync()
        assert done.returncode == 1
        assert done.summary["failed"] == 1 and done.summary["downloaded"] == 9


def test_api_error_text_echoing_the_token_is_never_stored_or_printed(syncd):
    syncd.sim.add_fault(
        "GET",
        r"^/v2/audio/licenses$",
        status=400,
        times=1,
        body={"message": f"bad request from Bearer {TOKEN}"},
    )
    syncd.sim.add_fault(
        "POST", r"/downloads$", status=404, times=1, body={"message": f"no license for {TOKEN}"}
    )
    done = syncd.sync("-v")
    assert done.returncode == 1
    status = syncd.run("status", "--json")
    everything = done.stdout + done.stderr + status.stdout + status.stderr
    assert TOKEN not in everything and "***" in done.stderr
    assert TOKEN.encode() not in syncd.db_path.read_bytes()


def test_a_dead_api_is_given_up_quickly_and_everything_stays_queued(syncd):
    import socket

    with socket.socket() as probe:  # a loopback port where nothing listens
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    started = time.monotonic()
    done = syncd.sync(env={"SYNCD_API__BASE_URL": dead})
    assert done.returncode == 5, done.stderr
    assert time.monotonic() - started < 15
    assert done.summary["api_requests"] == 2  # refused, never answered: one retry, given up
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"syncd: the API at {dead} could not be reached (")
    assert "check api.base_url" in last
    lines = [line for line in done.stderr.splitlines() if line.startswith("syncd: stream")]
    assert len(lines) == 1  # the stream that tried; the others were not even sent
    again = syncd.sync()  # the API is back
    assert again.returncode == 0 and again.summary["downloaded"] == 9


def test_a_401_on_a_redownload_stops_the_run_at_once_with_exit_3(syncd):
    syncd.sim.add_fault(
        "POST", r"/downloads$", status=401, body={"message": "token revoked"}, times=100
    )
    done = syncd.sync("--media", "images")
    assert done.returncode == 3
    assert "401" in done.stderr
    assert len(syncd.sim.api_requests("POST")) <= 4  # what was in flight, nothing after
    assert syncd.sim.download_requests() == []


def test_a_plain_http_download_url_off_loopback_is_refused(tmp_path):
    with Simulator(
        Catalog.example(),
        token=TOKEN,
        download_base="http://198.51.100.7:9",
        files_dir=tmp_path / "files",
    ) as sim:
        syncd = Syncd(tmp_path, sim)
        done = syncd.sync("--media", "audio")
        assert done.returncode == 1
        assert done.summary["failed"] == 2 and done.summary["downloaded"] == 0
        assert "https only" in done.stderr


def test_dry_run_changes_no_schema_and_reads_an_existing_ledger(syncd):
    import sqlite3

    assert syncd.sync("--media", "audio").returncode == 0
    syncd.sim.add_license("audio", file_size=1000)
    before = syncd.db_path.read_bytes()
    dry = syncd.sync("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.summary["new_licenses"] == 11  # 10 never recorded + the new audio one
    assert dry.stdout.count("would redownload") == 8  # 7 images/videos files + 1 audio
    with sqlite3.connect(syncd.db_path) as db:
        assert db.execute("select count(*) from licenses").fetchone() == (2,)
    assert syncd.db_path.read_bytes() == before


def test_dry_run_on_an_older_schema_asks_for_db_upgrade_and_changes_nothing(syncd):
    import sqlite3

    assert syncd.run("db", "upgrade").returncode == 0
    with sqlite3.connect(syncd.db_path) as db:
        db.execute("update alembic_version set version_num = '0000'")
    dry = syncd.sync("--dry-run")
    assert dry.returncode == 4
    assert "syncd db upgrade" in dry.stderr
    with sqlite3.connect(syncd.db_path) as db:
        assert db.execute("select version_num from alembic_version").fetchone() == ("0000",)
    assert syncd.sim.requests == []


def test_one_asset_whose_redownloads_keep_failing_does_not_stop_the_rest(syncd):
    syncd.sim.add_fault(
        "POST", r"/licenses/(i4117504982|i5220931177)/downloads$", status=503, times=100
    )
    done = syncd.sync()
    assert done.returncode == 1
    assert done.summary["failed"] == 2 and done.summary["downloaded"] == 8
    assert "not answering" not in done.stderr


def test_a_sidecar_that_cannot_be_written_at_the_end_is_exit_4(sim, tmp_path, monkeypatch):
    from syncd.config import load
    from syncd.errors import StorageError
    from syncd.storage.filesystem import FilesystemStorage
    from syncd.sync import SyncRun

    def refuse(self, key, data):
        raise StorageError(f"cannot store {key!r}: no space left on device")

    monkeypatch.setattr(FilesystemStorage, "put_bytes", refuse)
    config = load(
        environ={
            "SYNCD_API__BASE_URL": sim.base_url,
            "SHUTTERSTOCK_API_TOKEN": TOKEN,
            "SYNCD_DATABASE__URL": f"sqlite:///{tmp_path / 's.db'}",
            "SYNCD_STORAGE__PATH": str(tmp_path / "dam"),
        },
        search=False,
    )
    result = SyncRun(config, media=("audio",)).execute()
    assert result.exit_code == 4 and "no space left" in str(result.fatal)


@pytest.mark.filesystem_only
def test_a_read_only_storage_whose_folders_exist_exits_4_before_any_request(syncd, tmp_path):
    """Only the write probe can tell: the root and its partial folder exist (mkdir succeeds),
    but nothing can be written there."""
    mountpoint = tmp_path / "ro"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}", pytrace=False)
    try:
        root = mountpoint / "dam"
        (root / ".syncd-partial").mkdir(parents=True)
        subprocess.run(["mount", "-o", "remount,ro", str(mountpoint)], check=True)
        done = syncd.sync(env={"SYNCD_STORAGE__PATH": str(root)})
        assert done.returncode == 4, done.stderr
        assert "Read-only file system" in done.stderr and str(root) in done.stderr
        assert syncd.sim.requests == []
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def _file_gets(sim) -> list:
    return [r for r in sim.download_requests() if r.method == "GET"]


@pytest.mark.parametrize("size_mib", [3, 12])  # one PUT, and a multipart upload on S3
def test_a_download_reset_midway_is_resumed_with_a_range_and_the_file_is_whole(tmp_path, size_mib):
    catalog = file_catalog(seed=41, stream="videos", count=1, size=size_mib << 20)
    with Simulator(catalog, token=TOKEN) as sim:
        syncd = Syncd(tmp_path, sim)
        syncd.env.update(
            {"SYNCD_STORAGE__MULTIPART_THRESHOLD": "5MiB", "SYNCD_STORAGE__PART_SIZE": "5MiB"}
        )
        sim.add_fault("GET", r"^/files/", action="truncate", times=1)  # half, then a reset
        done = syncd.sync("--media", "videos")
        gets = _file_gets(sim)
    assert done.returncode == 0, done.stderr
    assert done.summary["downloaded"] == 1 and done.summary["bytes_downloaded"] == size_mib << 20
    first, second = gets
    assert "Range" not in first.headers
    # the rest only: from a byte past the start, and only if the file is the one begun
    resumed_from = int(second.headers["Range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_from <= (size_mib << 20) // 2
    assert second.status == 206 and second.headers["If-Range"].startswith('"')
    assert_every_file_correct_so_far(syncd)


def test_a_download_whose_file_changed_meanwhile_starts_again_from_byte_0(tmp_path):
    catalog = file_catalog(seed=42, stream="videos", count=1, size=3 << 20)
    with Simulator(catalog, token=TOKEN) as sim:
        syncd = Syncd(tmp_path, sim)
        # the broken answer carries another ETag than the file has now: If-Range fails
        sim.add_fault("GET", r"^/files/", action="truncate", headers={"ETag": '"older"'}, times=1)
        done = syncd.sync("--media", "videos")
        gets = _file_gets(sim)
    assert done.returncode == 0, done.stderr
    first, second = gets  # the whole file came with the answer to the range: no third GET
    assert second.headers["If-Range"] == '"older"' and second.status == 200
    assert_every_file_correct_so_far(syncd)
