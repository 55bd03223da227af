"""The command line: usage errors, the demo, SIGINT."""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.conftest import REPO, Syncd, file_catalog, slow_simulator


def test_usage_error_exits_2_with_the_usage_line(syncd):
    done = syncd.run("sync", "--media", "photos")
    assert done.returncode == 2
    assert "usage:" in done.stderr and "--media" in done.stderr
    assert syncd.sim.requests == []


def test_unknown_command_exits_2(syncd):
    done = syncd.run("frobnicate")
    assert done.returncode == 2 and "usage:" in done.stderr


def test_logs_are_json_lines_off_a_terminal_and_carry_stream_and_license(syncd):
    import json

    done = syncd.sync()
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert lines, "no log lines at all"
    assert all(isinstance(line, dict) and line.get("event") for line in lines)
    fetched = {
        lic.id: lic.stream
        for stream in ("images", "videos", "audio")
        for lic in syncd.sim.catalog.history(stream)
        if lic.is_downloadable is not False and lic.id != "i5220931177"  # its twin was fetched
    }
    stored = [line for line in lines if line["event"] == "file.stored"]
    assert len(stored) == 9
    assert {line["license_id"]: line["stream"] for line in stored} == fetched
    unavailable = [line for line in lines if line["event"] == "license.unavailable"]
    assert {line["license_id"]: line["stream"] for line in unavailable} == {
        "i5302216985": "images",
        "e3f0c2a9d1b84e6a9c7d5b3a1f2e4d6c8b": "editorial/images",
    }
    caught_up = [line["stream"] for line in lines if line["event"] == "stream.caught_up"]
    assert sorted(caught_up) == sorted(
        ["images", "videos", "audio", "editorial/images", "editorial/videos"]
    )


def test_demo_syncs_the_simulator_into_syncd_demo(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "syncd", "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    assert "downloaded: 9" in done.stdout
    assert (tmp_path / "syncd-demo" / "dam" / "images" / "59656357" / "huge.jpg").is_file()
    assert (tmp_path / "syncd-demo" / "syncd.db").is_file()


def test_sigint_during_sync_exits_130_and_keeps_what_finished(tmp_path):
    catalog = file_catalog(5, "videos", 60, 2 << 20)
    with slow_simulator(catalog) as sim:
        syncd = Syncd(tmp_path, sim)
        process = syncd.start_until_stored(
            2, "sync", "--json", "--no-progress", "--media", "videos"
        )
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 130, stderr
        assert "interrupted" in stderr
        kept = len(syncd.stored_files())
        assert kept >= 2
        partial = syncd.root / ".syncd-partial"
        assert not any(partial.iterdir())
        rerun = syncd.sync("--media", "videos")
        assert rerun.returncode == 0
        assert rerun.summary["downloaded"] == 60 - kept
