"""One ledger, several processes: two syncs on one database with their own storage roots both
finish; two on one storage are kept apart by a lease in the database (exit 75), which a run
whose owner is gone gives up; a license left unavailable only because relicensing was off is
queued again when it is on."""

from __future__ import annotations

import sqlite3
import time

import pytest
from sqlalchemy import text

from syncd.db import connect, upgrade
from tests.conftest import Syncd, file_catalog, requests_by_kind, sigkill, slow_simulator
from tests.test_sync import assert_every_file_correct, assert_every_file_correct_so_far


def runs_of(syncd: Syncd, url: str | None = None) -> list[tuple[str, str | None]]:
    engine = connect(url or f"sqlite:///{syncd.db_path}", write=False)
    try:
        with engine.connect() as connection:
            return [
                (row[0], row[1])
                for row in connection.execute(text("SELECT outcome, storage FROM runs ORDER BY id"))
            ]
    finally:
        engine.dispose()


def two_syncs_with_their_own_roots_both_finish(tmp_path, db_url: str) -> None:
    catalog = file_catalog(21, "images", 40, 256 << 10)
    with slow_simulator(catalog, latency_ms=40) as sim:
        first = Syncd(tmp_path / "a", sim)
        second = Syncd(tmp_path / "b", sim)
        for one in (first, second):
            one.home.mkdir()
            one.env["SYNCD_DATABASE__URL"] = db_url
        processes = [
            one.start("sync", "--json", "--no-progress", "--media", "images")
            for one in (first, second)
        ]
        results = [process.communicate(timeout=180) for process in processes]
        for process, (_out, err) in zip(processes, results, strict=True):
            assert process.returncode == 0, err
            assert "Traceback" not in err and "IntegrityError" not in err
            assert "database is locked" not in err
        for one in (first, second):
            assert len(one.stored_files()) == 40  # each root is complete on its own
            assert_every_file_correct(one)
            assert len(one.sidecar("images", catalog.history("images")[0].media_id)["files"]) == 1
        outcomes = runs_of(first, db_url)
        assert sorted(outcome for outcome, _ in outcomes) == ["ok", "ok"]
        assert {storage for _, storage in outcomes} == {
            f"file://{first.root.resolve()}",
            f"file://{second.root.resolve()}",
        }


def test_two_syncs_on_one_sqlite_file_with_their_own_roots_both_finish(tmp_path):
    two_syncs_with_their_own_roots_both_finish(tmp_path, f"sqlite:///{tmp_path / 'shared.db'}")


@pytest.mark.postgres
def test_two_syncs_on_one_postgresql_database_with_their_own_roots_both_finish(
    tmp_path, postgres_url
):
    # the database is new: both processes migrate it at once, under the advisory lock
    two_syncs_with_their_own_roots_both_finish(tmp_path, postgres_url)


def test_a_second_sync_on_the_same_storage_exits_75_at_once_and_harms_nothing(tmp_path):
    catalog = file_catalog(8, "videos", 30, 3 << 20)
    with slow_simulator(catalog) as sim:
        syncd = Syncd(tmp_path, sim)
        first = syncd.start_until_stored(1, "sync", "--json", "--no-progress", "--media", "videos")
        sent_before = len(sim.api_requests())
        started = time.monotonic()
        second = syncd.sync("--media", "videos")
        assert second.returncode == 75, second.stderr
        assert time.monotonic() - started < 10
        line = second.stderr.strip().splitlines()[-1]
        assert line.startswith("syncd: another syncd run (pid ")
        assert str(syncd.root) in line and "try again" in line
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        # the refused run sent nothing: the first run's requests are all there are
        assert len(sim.api_requests()) - sent_before <= 30 + 1
        assert len(sim.api_requests("GET", "/v2/videos/licenses")) == 1
        assert len(syncd.stored_files()) == 30
        assert_every_file_correct_so_far(syncd)
        assert [outcome for outcome, _ in runs_of(syncd)] == ["ok"]


@pytest.mark.postgres
def test_a_second_sync_on_the_same_storage_exits_75_on_postgresql_too(tmp_path, postgres_url):
    catalog = file_catalog(8, "videos", 30, 3 << 20)
    with slow_simulator(catalog) as sim:
        syncd = Syncd(tmp_path, sim)
        syncd.env["SYNCD_DATABASE__URL"] = postgres_url
        first = syncd.start_until_stored(1, "sync", "--json", "--no-progress", "--media", "videos")
        second = syncd.sync("--media", "videos")
        assert second.returncode == 75, second.stderr
        assert "another syncd run" in second.stderr
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, err


def test_after_a_sigkill_the_dead_owners_lease_is_taken_over_at_once(tmp_path):
    catalog = file_catalog(9, "videos", 30, 3 << 20)
    with slow_simulator(catalog) as sim:
        syncd = Syncd(tmp_path, sim)
        process = syncd.start_until_stored(1, "sync", "--no-progress", "--media", "videos")
        sigkill(process)
        started = time.monotonic()
        done = syncd.sync("--media", "videos")
        assert done.returncode == 0, done.stderr
        assert time.monotonic() - started < 60  # did not wait out the 60 s lease
        assert len(syncd.stored_files()) == 30
        assert [outcome for outcome, _ in runs_of(syncd)] == ["killed", "ok"]
        with sqlite3.connect(syncd.db_path) as db:
            assert db.execute("SELECT count(*) FROM leases").fetchone()[0] == 0


def test_a_lease_held_from_another_host_blocks_until_it_expires(tmp_path, sim):
    syncd = Syncd(tmp_path, sim)
    assert syncd.run("db", "upgrade").returncode == 0
    identity = f"file://{syncd.root.resolve()}"
    engine = connect(f"sqlite:///{syncd.db_path}")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO leases (name, owner, host, pid, acquired_at, expires_at) VALUES "
                "(:name, 'elsewhere:1:x', 'elsewhere', 1, "
                "(julianday('now') - 2440587.5) * 86400.0, "
                "(julianday('now') - 2440587.5) * 86400.0 + 3)"
            ),
            {"name": identity},
        )
    engine.dispose()
    blocked = syncd.sync()
    assert blocked.returncode == 75, blocked.stderr
    assert "on elsewhere" in blocked.stderr
    assert sim.api_requests() == []
    time.sleep(3.5)
    done = syncd.sync()
    assert done.returncode == 0, done.stderr
    assert done.summary["downloaded"] == 9


def test_a_running_run_of_a_live_process_is_not_marked_killed(tmp_path, sim):
    """A run on another storage, of a process still alive and beating: left alone."""
    syncd = Syncd(tmp_path, sim)
    assert syncd.run("db", "upgrade").returncode == 0
    import os

    engine = connect(f"sqlite:///{syncd.db_path}")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO runs (command, started_at, outcome, host, pid, storage, heartbeat_at)"
                " VALUES ('sync', '2026-01-01 00:00:00', 'running', :host, :pid, 'file:///x', "
                "(julianday('now') - 2440587.5) * 86400.0)"
            ),
            {"host": os.uname().nodename, "pid": os.getpid()},
        )
    engine.dispose()
    assert syncd.sync().returncode == 0
    assert [outcome for outcome, _ in runs_of(syncd)] == ["running", "ok"]


def test_unavailable_for_want_of_relicensing_is_queued_again_when_it_is_on(syncd):
    assert syncd.sync().returncode == 0
    with sqlite3.connect(syncd.db_path) as db:
        waiting = db.execute(
            "SELECT license_id FROM licenses WHERE status = 'unavailable' "
            "AND waits_for = 'relicense'"
        ).fetchall()
    assert len(waiting) == 2  # the editorial image and the not-downloadable image
    again = syncd.sync()
    assert again.summary["unavailable"] == 0  # off: final until the switch changes
    # on, with the default budget of 0 credits: considered again, over budget, still queued
    on = syncd.sync(env={"SYNCD_SYNC__RELICENSE": "true"})
    assert on.returncode == 0, on.stderr
    assert on.summary["unavailable"] == 2 and on.summary["credits_spent"] == 0
    with sqlite3.connect(syncd.db_path) as db:
        reasons = [
            r[0] for r in db.execute("SELECT reason FROM licenses WHERE waits_for IS NOT NULL")
        ]
    assert len(reasons) == 2 and all(r.startswith("budget:") for r in reasons), reasons


def test_the_migration_marks_todays_relicensing_is_off_rows_and_keeps_their_files(tmp_path):
    from alembic import command

    from syncd.db.engine import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = connect(url)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    with engine.begin() as connection:
        for license_id, reason in (
            ("e1", "editorial media has no redownload and relicensing is off"),
            ("e2", "HTTP 404: gone"),
        ):
            connection.execute(
                text(
                    "INSERT INTO licenses (media_type, license_id, media_id, size, license, "
                    "download_time, license_metadata, status, reason, attempts, first_seen_at, "
                    "updated_at) VALUES ('editorial/images', :id, 'm1', 'original', 'x', "
                    "'2024-01-01 00:00:00', '{}', 'unavailable', :reason, 1, "
                    "'2024-01-01 00:00:00', '2024-01-01 00:00:00')"
                ),
                {"id": license_id, "reason": reason},
            )
        connection.execute(
            text(
                "INSERT INTO files VALUES ('images/1/huge.jpg', 'images', '1', 'huge', 3, "
                "'abc', '2024-01-01 00:00:00')"
            )
        )
    upgrade(engine)
    with engine.connect() as connection:
        marks = dict(connection.execute(text("SELECT license_id, waits_for FROM licenses")).all())
        files = connection.execute(text("SELECT storage, key FROM files")).all()
    engine.dispose()
    assert marks == {"e1": "relicense", "e2": None}
    assert files == [("", "images/1/huge.jpg")]  # adopted by the first storage that runs


def test_a_storage_added_to_a_ledger_later_is_filled_too(tmp_path, sim):
    """Licenses are the account's, files each storage's: a second root on a ledger that
    already stored everything in the first gets every file (and sidecar) of its own."""
    first = Syncd(tmp_path / "a", sim)
    second = Syncd(tmp_path / "b", sim)
    for one in (first, second):
        one.home.mkdir()
        one.env["SYNCD_DATABASE__URL"] = f"sqlite:///{tmp_path / 'shared.db'}"
    assert first.sync().summary["downloaded"] == 9
    done = second.sync()
    assert done.returncode == 0, done.stderr
    assert done.summary["new_licenses"] == 0 and done.summary["downloaded"] == 9
    assert sorted(second.stored_files()) == sorted(first.stored_files())
    assert_every_file_correct(second)
    assert second.sidecar("images", "59656357")["files"] == [
        {**f} for f in first.sidecar("images", "59656357")["files"]
    ]
    sim.reset_log()
    again = first.sync()
    assert again.summary["downloaded"] == 0
    assert requests_by_kind(sim).get("list") == 5 and "details" not in requests_by_kind(sim)
