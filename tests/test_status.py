"""``syncd status``: is the DAM complete, and what is missing and why. Every test runs the real
command, as a subprocess, on the database a real sync against the simulator left."""

from __future__ import annotations

import json
import time

from syncd.simulator import Simulator
from syncd.status import cut, human_size
from tests.conftest import TOKEN, Syncd, file_catalog

FAILING = "v2711930286"  # a video license whose redownload always answers 500
UNAVAILABLE = {
    "i5302216985": "not downloadable (is_downloadable: false) and relicensing is off",
    "e3f0c2a9d1b84e6a9c7d5b3a1f2e4d6c8b": (
        "editorial media has no redownload and relicensing is off"
    ),
}


def status(syncd: Syncd, *args: str) -> dict:
    done = syncd.run("status", "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def sync_with_one_failure(syncd: Syncd) -> dict:
    # max_retries 2 (the fixture): three 500s fail it, and the next run finds the API well
    syncd.sim.add_fault("POST", rf"/v2/videos/licenses/{FAILING}/downloads$", status=500, times=3)
    done = syncd.sync()
    assert done.returncode == 1, done.stderr
    return done.summary


def test_missing_lists_exactly_the_failed_and_unavailable_licenses_with_their_reasons(syncd):
    summary = sync_with_one_failure(syncd)
    assert summary["failed"] == 1 and summary["unavailable"] == 2
    missing = status(syncd, "--missing")["missing"]
    assert {m["license_id"]: m["status"] for m in missing} == {
        FAILING: "failed",
        **dict.fromkeys(UNAVAILABLE, "unavailable"),
    }
    by_id = {m["license_id"]: m for m in missing}
    for license_id, reason in UNAVAILABLE.items():
        assert by_id[license_id]["reason"] == reason
    failed = by_id[FAILING]
    assert (failed["media_type"], failed["media_id"], failed["size"]) == ("videos", "3965881", "hd")
    assert "HTTP 500" in failed["reason"] and failed["attempts"] == 1
    assert failed["last_tried"] is not None and failed["licensed_at"] is not None

    # once the fault is gone the next run stores it, and only the unavailable ones stay missing
    done = syncd.sync()
    assert done.returncode == 0 and done.summary["downloaded"] == 1
    assert {m["license_id"] for m in status(syncd, "--missing")["missing"]} == set(UNAVAILABLE)


def test_missing_in_human_output_is_a_table_of_those_licenses_only(syncd):
    sync_with_one_failure(syncd)
    done = syncd.run("status", "--missing")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "missing: 3 licenses"
    rows = [line for line in lines[2:] if line.strip()]
    assert len(rows) == 3
    assert any(r.startswith(FAILING) and " failed " in r and "HTTP 500" in r for r in rows)
    assert any(r.startswith("i5302216985") and "is_downloadable: false" in r for r in rows)
    # the 34-character editorial id is cut to its column, with an ellipsis
    assert any(r.startswith("e3f0c2a9d1b84e6a9c7…") for r in rows)


def test_totals_problems_and_last_success(syncd):
    sync_with_one_failure(syncd)
    report = status(syncd)
    on_disk = sum(path.stat().st_size for path in syncd.stored_files().values())
    assert report["totals"] == {
        "licenses": 12,
        "licenses_stored": 9,  # 12 less the failed one and the two unavailable
        "licenses_missing": 3,
        "assets": 10,
        "files_stored": 8,  # two licenses of one asset and size share a file
        "bytes_stored": on_disk,
    }
    assert sorted((p["status"], p["reason"], p["licenses"]) for p in report["problems"]) == sorted(
        [("failed", report["problems"][0]["reason"], 1)]
        + [("unavailable", reason, 1) for reason in UNAVAILABLE.values()]
    )
    assert any(p["status"] == "failed" and "HTTP 500" in p["reason"] for p in report["problems"])
    streams = {s["stream"]: s for s in report["streams"]}
    assert streams["images"]["last_success_at"] == streams["images"]["last_run_at"]
    assert report["running"] == []

    # a stream refused on the next run keeps its earlier last success
    syncd.sim.add_fault("GET", r"/v2/images/licenses$", status=403, times=5)
    assert syncd.sync("--media", "images").returncode == 3
    images = {s["stream"]: s for s in status(syncd)["streams"]}["images"]
    assert images["last_outcome"] == "refused"
    assert images["last_success_at"] == streams["images"]["last_success_at"]
    assert images["last_run_at"] >= images["last_success_at"]


def test_human_status_shows_totals_with_human_sizes_and_reasons(syncd):
    sync_with_one_failure(syncd)
    report = status(syncd)
    done = syncd.run("status")
    assert done.returncode == 0, done.stderr
    totals = report["totals"]
    assert (
        f"licenses 12: 9 stored here, 3 missing; 8 files, {human_size(totals['bytes_stored'])}"
        in done.stdout.splitlines()
    )
    assert " MiB" in human_size(totals["bytes_stored"])
    assert "not stored, by reason (licenses):" in done.stdout
    for reason in UNAVAILABLE.values():
        assert f"       1  unavailable {reason}" in done.stdout.splitlines()
    editorial = next(
        line for line in done.stdout.splitlines() if line.startswith("editorial/images ")
    )
    assert "e3f0c2a9d1b84e6a9c7d5b3…" in editorial and "e3f0c2a9d1b84e6a9c7d5b3a" not in editorial


def test_runs_lists_the_last_runs_newest_first_with_their_summaries(syncd):
    first = sync_with_one_failure(syncd)
    second = syncd.sync()
    assert second.returncode == 0
    runs = status(syncd, "--runs", "5")["runs"]
    assert [(r["command"], r["outcome"], r["exit_code"]) for r in runs] == [
        ("sync", "ok", 0),
        ("sync", "failed", 1),
    ]
    assert runs[0]["id"] > runs[1]["id"]
    assert runs[1]["summary"]["failed"] == first["failed"] == 1
    assert runs[0]["summary"]["downloaded"] == 1
    assert len(status(syncd, "--runs", "1")["runs"]) == 1
    human = syncd.run("status", "--runs", "2")
    lines = human.stdout.splitlines()
    assert lines[0].split() == ["run", "command", "started", "outcome", "exit", "summary"]
    assert len(lines) == 3 and " failed " in lines[2] and "failed 1" in lines[2]


def test_status_in_a_folder_without_a_database_exits_1_naming_the_path(syncd):
    # the default sqlite:///syncd.db, in a folder where no sync ever ran
    done = syncd.run("status", env={"SYNCD_DATABASE__URL": "sqlite:///syncd.db"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"syncd: no syncd database at '{syncd.db_path}': nothing was synced with this "
        "configuration; run status where `syncd sync` ran, or give its --config (or database.url)"
    )
    assert done.stdout == ""
    assert not syncd.db_path.exists() and not syncd.root.exists()


def test_status_shows_a_sync_that_is_running_and_who_runs_it(tmp_path):
    catalog = file_catalog(seed=3, stream="images", count=8, size=256 * 1024)
    with Simulator(catalog, token=TOKEN) as sim:
        syncd = Syncd(tmp_path, sim)
        process = syncd.start("sync", "--no-progress", "--bwlimit", "256KiB", "--media", "images")
        try:
            running = []
            deadline = time.monotonic() + 30
            while not running and time.monotonic() < deadline and process.poll() is None:
                if syncd.db_path.exists():
                    done = syncd.run("status", "--json")
                    if done.returncode == 0:
                        running = json.loads(done.stdout)["running"]
                time.sleep(0.2)
            assert [(r["command"], r["pid"], r["outcome"]) for r in running] == [
                ("sync", process.pid, "running")
            ]
            human = syncd.run("status").stdout.splitlines()
            assert any(
                line.startswith("running: sync since ") and f"(pid {process.pid} on " in line
                for line in human
            )
        finally:
            process.communicate(timeout=60)
        assert process.returncode == 0
        assert status(syncd)["running"] == []


def test_human_size_and_cut():
    assert human_size(0) == "0 B"
    assert human_size(1023) == "1023 B"
    assert human_size(1024) == "1.0 KiB"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(5 * 1024**3) == "5.0 GiB"
    assert human_size(3 * 1024**5) == "3072.0 TiB"
    assert cut("abcdef", 6) == "abcdef"
    assert cut("abcdefg", 6) == "abcde…"
