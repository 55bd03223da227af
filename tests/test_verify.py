"""`syncd verify`: what it finds, what --repair queues, and that the next sync fetches exactly
that. No API request is ever made by verify. Backend-neutral: scripts/test.sh runs this file
again on moto and on SeaweedFS (SYNCD_TEST_STORAGE), where damage is done to the objects."""

from __future__ import annotations

import json
import time

from tests.conftest import Syncd, file_catalog, slow_simulator


def verify(syncd: Syncd, *args: str, env: dict | None = None):
    done = syncd.run("verify", "--json", *args, env=env)
    report = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else None
    return done, report


def damage(syncd: Syncd) -> dict[str, str]:
    """A deleted, a truncated and a same-size corrupted file: their keys by what was done."""
    files = syncd.stored_files()
    keys = sorted(files)
    deleted, truncated, flipped = keys[0], keys[3], keys[6]
    syncd.remove(deleted)
    syncd.overwrite(truncated, files[truncated].read_bytes()[:100])
    data = bytearray(files[flipped].read_bytes())
    data[len(data) // 2] ^= 0x40
    syncd.overwrite(flipped, bytes(data))
    return {"missing": deleted, "size": truncated, "sha256": flipped}


def test_a_whole_dam_verifies_with_exit_0(syncd):
    assert syncd.sync().returncode == 0
    sent = len(syncd.sim.requests)
    done, report = verify(syncd, "--full")
    assert done.returncode == 0, done.stderr
    assert report == {
        "checked": 9,
        "ok": 9,
        "missing": 0,
        "corrupt": 0,
        "queued": 0,
        "leftovers": 0,
        "leftovers_removed": 0,
        "problems": [],
    }
    assert len(syncd.sim.requests) == sent  # verify makes no API request


def test_full_finds_a_deleted_a_truncated_and_a_corrupted_file_and_repair_then_sync_refetch_them(
    syncd,
):
    assert syncd.sync().returncode == 0
    before = {key: path.read_bytes() for key, path in syncd.stored_files().items()}
    damaged = damage(syncd)
    done, report = verify(syncd, "--full")
    assert done.returncode == 1
    assert report["checked"] == 9 and report["ok"] == 6
    assert report["missing"] == 1 and report["corrupt"] == 2 and report["queued"] == 0
    assert sorted(report["problems"], key=lambda p: p["key"]) == sorted(
        ({"key": key, "problem": problem} for problem, key in damaged.items()),
        key=lambda p: p["key"],
    )
    # without --repair nothing is queued: a sync fetches nothing
    assert syncd.sync().summary["downloaded"] == 0

    done, report = verify(syncd, "--full", "--repair")
    assert done.returncode == 0, done.stderr
    assert report["queued"] == 3
    # repair deletes no stored data: the truncated and corrupted files are still there
    syncd.stored_files()  # (on S3: the local mirror brought up to date)
    assert (syncd.root / damaged["size"]).stat().st_size == 100
    assert (syncd.root / damaged["sha256"]).exists()

    downloads_before = len(syncd.sim.download_requests())
    again = syncd.sync()
    assert again.returncode == 0, again.stderr
    assert again.summary["downloaded"] == 3
    fetched = syncd.sim.download_requests()[downloads_before:]
    assert len(fetched) == 3
    after = {key: path.read_bytes() for key, path in syncd.stored_files().items()}
    assert after == before
    done, report = verify(syncd, "--full")
    assert done.returncode == 0 and report["ok"] == 9
    # the sidecars list the refetched files again
    for key in damaged.values():
        media_type, media_id = key.rsplit("/", 2)[0], key.rsplit("/", 2)[1]
        sidecar = syncd.sidecar(media_type, media_id)
        assert key in [f["key"] for f in sidecar["files"]]


def test_a_same_size_corruption_is_found_only_once_its_check_is_due(syncd):
    assert syncd.sync().returncode == 0
    damaged = damage(syncd)
    # every file was hashed when stored, within rehash_after (30 days): size and presence only
    done, report = verify(syncd)
    assert done.returncode == 1
    assert {p["problem"] for p in report["problems"]} == {"missing", "size"}
    time.sleep(1.1)  # stored over a second ago: due with a 1 s rehash_after
    done, report = verify(syncd, env={"SYNCD_VERIFY__REHASH_AFTER": "1s"})
    assert {p["key"] for p in report["problems"] if p["problem"] == "sha256"} == {damaged["sha256"]}


def test_a_file_found_right_is_not_rehashed_until_due_again(syncd):
    assert syncd.sync().returncode == 0
    time.sleep(2.5)  # stored 2.5 s ago: due for a 1 s and for a 2 s rehash_after
    first, report = verify(syncd, env={"SYNCD_VERIFY__REHASH_AFTER": "1s"})
    assert first.returncode == 0 and report["ok"] == 9
    key = sorted(syncd.stored_files())[2]
    data = bytearray((syncd.root / key).read_bytes())
    data[0] ^= 1
    syncd.overwrite(key, bytes(data))
    # checked a moment ago (stored 2.5 s ago): a 2 s rehash_after does not read it again
    done, report = verify(syncd, env={"SYNCD_VERIFY__REHASH_AFTER": "2s"})
    assert done.returncode == 0 and report["ok"] == 9
    done, report = verify(syncd, "--full")
    assert report["problems"] == [{"key": key, "problem": "sha256"}]


def test_leftovers_of_a_killed_run_are_found_and_removed_by_repair(syncd):
    assert syncd.sync().returncode == 0
    syncd.leave_partial("videos/a-killed-run/huge.mov")  # a partial file, or an open upload
    assert len(syncd.leftovers()) == 1
    done, report = verify(syncd)
    assert done.returncode == 1
    assert report["leftovers"] == 1 and report["leftovers_removed"] == 0
    assert len(syncd.leftovers()) == 1
    done, report = verify(syncd, "--repair")
    assert done.returncode == 0
    assert report["leftovers"] == 1 and report["leftovers_removed"] == 1
    assert syncd.leftovers() == []


def test_verify_while_a_sync_holds_the_storage_exits_75(tmp_path):
    catalog = file_catalog(11, "videos", 20, 1 << 20)
    with slow_simulator(catalog, latency_ms=500) as sim:
        syncd = Syncd(tmp_path, sim)
        first = syncd.start_until_stored(1, "sync", "--json", "--no-progress", "--media", "videos")
        done = syncd.run("verify", "--repair")
        assert done.returncode == 75, done.stderr
        assert "another syncd run (pid " in done.stderr.strip().splitlines()[-1]
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
    done = syncd.run("verify", "--full", "--json")
    assert done.returncode == 0
    assert json.loads(done.stdout.splitlines()[-1])["ok"] == 20


def test_human_output_names_each_problem(syncd):
    assert syncd.sync().returncode == 0
    damaged = damage(syncd)
    done = syncd.run("verify", "--full")
    assert done.returncode == 1
    lines = done.stdout.strip().splitlines()
    assert f"missing       {damaged['missing']}" in lines
    assert f"wrong size    {damaged['size']}" in lines
    assert f"wrong sha256  {damaged['sha256']}" in lines
    assert lines[-2] == ("verify: 9 checked (7 re-hashed), 6 ok, 1 missing, 2 corrupt, 0 leftovers")
