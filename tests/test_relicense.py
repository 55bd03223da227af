"""Relicensing end to end against the simulator, which licenses with credits and can hold,
delay or reset its answers: budgets, dry runs, and never buying twice."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import pytest

from syncd.simulator import Catalog
from tests.conftest import Syncd, requests_by_kind, sigkill

FILE = 3000
ON = {"SYNCD_SYNC__RELICENSE": "true"}


def locked_images(count: int) -> Catalog:
    """``count`` image licenses that cannot be redownloaded (is_downloadable: false)."""
    catalog = Catalog(seed=count)
    for n in range(count):
        catalog.add(
            "images",
            download_time=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n),
            is_downloadable=False,
            file_size=FILE,
        )
    return catalog


def reasons(syncd: Syncd) -> list[str]:
    with sqlite3.connect(syncd.db_path) as db:
        return [
            r[0] or "" for r in db.execute("select reason from licenses where status != 'stored'")
        ]


def intents(syncd: Syncd) -> list[tuple]:
    with sqlite3.connect(syncd.db_path) as db:
        return db.execute("select media_id, state, credits from relicense_intents").fetchall()


def test_a_budget_of_3_spends_exactly_3_credits_and_a_dry_run_spends_none(tmp_path, simulated):
    syncd = Syncd(tmp_path, simulated(locked_images(10)))
    env = {**ON, "SYNCD_SYNC__RELICENSE_BUDGET": "3"}
    planned = syncd.run(
        "sync", "--dry-run", "--json", "--no-progress", "--media", "images", env=env
    )
    assert planned.returncode == 0, planned.stderr
    assert planned.summary["credits_planned"] == 3 and planned.summary["planned"] == 3
    assert planned.summary["credits_spent"] == 0 and planned.summary["unavailable"] == 7
    assert planned.stdout.count("would relicense") == 3
    assert syncd.sim.credits_spent() == 0 and syncd.sim.license_requests() == []

    done = syncd.sync("--media", "images", env=env)
    assert done.returncode == 0, done.stderr
    assert syncd.sim.credits_spent() == 3
    assert done.summary["relicensed"] == 3 and done.summary["credits_spent"] == 3
    assert done.summary["unavailable"] == 7 and done.summary["downloaded"] == 0
    assert len(syncd.stored_files()) == 3
    budget = [r for r in reasons(syncd) if r.startswith("budget")]
    assert len(budget) == 7, reasons(syncd)
    # over budget stays queued: the next run with budget relicenses 3 more, never the first 3
    again = syncd.sync("--media", "images", env=env)
    assert again.returncode == 0, again.stderr
    assert syncd.sim.credits_spent() == 6
    assert max(syncd.sim.credits_by_media().values()) == 1  # no asset licensed twice


def test_relicensing_off_or_budget_0_sends_no_licensing_request(tmp_path, simulated):
    syncd = Syncd(tmp_path, simulated(locked_images(4)))
    assert syncd.sync("--media", "images").returncode == 0
    assert syncd.sync("--media", "images", env=ON).returncode == 0  # budget 0 by default
    assert syncd.sim.license_requests() == [] and syncd.sim.credits_spent() == 0


def test_sigkill_after_the_request_is_sent_spends_no_second_credit(tmp_path, simulated):
    syncd = Syncd(tmp_path, simulated(locked_images(1)))
    syncd.env.update({**ON, "SYNCD_SYNC__RELICENSE_BUDGET": "5"})
    hold = syncd.sim.hold_next_license()
    process = syncd.start("sync", "--json", "--no-progress", "--media", "images")
    assert hold.wait_reached(30), "the licensing request never came"
    sigkill(process)  # granted and charged, the answer never reached syncd
    hold.release()
    assert syncd.sim.credits_spent() == 1
    assert [state for _, state, _ in intents(syncd)] == ["sending"]
    again = syncd.sync("--media", "images")
    assert again.returncode == 0, again.stderr
    assert syncd.sim.credits_spent() == 1  # settled from the history, not bought again
    assert len(syncd.stored_files()) == 1
    assert [state for _, state, _ in intents(syncd)] == ["confirmed"]


@pytest.mark.parametrize("fault", ["timeout", "reset"])
def test_a_timeout_or_reset_on_the_licensing_request_is_settled_not_repeated(
    tmp_path, simulated, fault
):
    syncd = Syncd(tmp_path, simulated(locked_images(1)))
    syncd.env.update({**ON, "SYNCD_SYNC__RELICENSE_BUDGET": "5", "SYNCD_API__TIMEOUT_S": "2"})
    if fault == "timeout":
        syncd.sim.time_out_next_license(delay_s=20)
    else:
        syncd.sim.reset_next_license()
    first = syncd.sync("--media", "images")
    assert syncd.sim.credits_spent() == 1
    assert len(syncd.sim.license_requests()) == 1  # never retried
    assert first.summary["relicensed"] == 0
    assert [state for _, state, _ in intents(syncd)] == ["unknown"]
    again = syncd.sync("--media", "images")
    assert again.returncode == 0, again.stderr
    assert syncd.sim.credits_spent() == 1 and len(syncd.sim.license_requests()) == 1
    assert len(syncd.stored_files()) == 1
    assert [state for _, state, _ in intents(syncd)] == ["confirmed"]


def test_two_processes_on_one_database_never_license_a_need_twice(tmp_path, simulated):
    sim = simulated(locked_images(12))
    runs = [Syncd(tmp_path / name, sim) for name in ("a", "b")]
    for one in runs:
        one.home.mkdir()
        one.env.update(
            {
                **ON,
                "SYNCD_SYNC__RELICENSE_BUDGET": "20",
                "SYNCD_DATABASE__URL": f"sqlite:///{tmp_path / 'shared.db'}",
            }
        )
    processes = [one.start("sync", "--json", "--no-progress", "--media", "images") for one in runs]
    for process in processes:
        process.communicate(timeout=120)
    assert max(sim.credits_by_media().values()) == 1
    assert sim.credits_spent() == 12
    time.sleep(0.1)
    for one in runs:  # each storage gets every file, the second through the new licenses
        done = one.sync("--media", "images")
        assert done.returncode == 0, done.stderr
        assert len(one.stored_files()) == 12
    assert sim.credits_spent() == 12


def test_an_api_subscription_gets_price_and_customer_id_or_is_not_used(tmp_path, simulated):
    catalog = locked_images(2)
    catalog.clear_subscriptions()
    catalog.add_subscription("s-api", kind="api", media="images")
    syncd = Syncd(tmp_path, simulated(catalog))
    env = {**ON, "SYNCD_SYNC__RELICENSE_BUDGET": "5"}
    without = syncd.sync("--media", "images", env=env)
    assert without.returncode == 0, without.stderr
    assert syncd.sim.license_requests() == [] and without.summary["unavailable"] == 2
    assert all("customer_id" in r for r in reasons(syncd))
    env.update({"SYNCD_RELICENSE__CUSTOMER_ID": "c-42", "SYNCD_RELICENSE__PRICE": "9.5"})
    done = syncd.sync("--media", "images", env=env)
    assert done.returncode == 0, done.stderr
    assert done.summary["relicensed"] == 2 and syncd.sim.credits_spent() == 2


def test_status_shows_the_credits_spent_per_run_and_per_day_and_the_unknown_intent(
    tmp_path, simulated
):
    syncd = Syncd(tmp_path, simulated(locked_images(3)))
    syncd.env.update({**ON, "SYNCD_API__TIMEOUT_S": "2"})
    first = syncd.sync("--media", "images", env={"SYNCD_SYNC__RELICENSE_BUDGET": "2"})
    assert first.returncode == 0, first.stderr
    assert syncd.sim.credits_spent() == 2
    syncd.sim.time_out_next_license(delay_s=20)  # the third is granted, its answer never comes
    second = syncd.sync("--media", "images", env={"SYNCD_SYNC__RELICENSE_BUDGET": "5"})
    assert syncd.sim.credits_spent() == 3 and len(syncd.sim.license_requests()) == 3
    unknown_id = syncd.sim.license_requests()[-1].grants[0].media_id
    assert [m for m, state, _ in intents(syncd) if state == "unknown"] == [unknown_id]

    shown = syncd.run("status", "--json")
    assert shown.returncode == 0, shown.stderr
    relicensing = json.loads(shown.stdout)["relicensing"]
    today = datetime.now(UTC)
    days = {(today - timedelta(days=n)).strftime("%Y-%m-%d") for n in (0, 1)}
    assert set(relicensing["credits_by_day"]) <= days  # a run across UTC midnight: two days
    assert sum(relicensing["credits_by_day"].values()) == syncd.sim.credits_spent() == 3
    assert [(i["media_type"], i["media_id"], i["state"]) for i in relicensing["unsettled"]] == [
        ("images", unknown_id, "unknown")
    ]

    text = syncd.run("status")
    assert text.returncode == 0, text.stderr
    by_day = re.search(r"relicensing credits by day \(UTC\): (.*)", text.stdout)
    assert by_day, text.stdout
    assert sum(int(n) for n in re.findall(r"\d{4}-\d\d-\d\d: (\d+)", by_day[1])) == 3
    assert re.search(
        rf"outcome unknown: images/{re.escape(unknown_id)} size \S+ \(unknown", text.stdout
    )

    # per run: what the answers confirmed (run 1: the simulator's 2); the unknown credit of
    # run 2 is in the day's count and the unsettled list, not in that run's
    runs = syncd.run("status", "--runs", "2", "--json")
    assert runs.returncode == 0, runs.stderr
    shown_runs = [run["summary"]["credits_spent"] for run in json.loads(runs.stdout)["runs"]]
    assert shown_runs == [0, 2] == [second.summary["credits_spent"], first.summary["credits_spent"]]
    table = syncd.run("status", "--runs", "2").stdout.splitlines()
    assert "credits_spent" not in table[1] and "credits_spent 2" in table[2], table


def test_a_failed_redownload_is_never_relicensed_as_a_fallback(tmp_path, simulated):
    catalog = locked_images(1)  # relicensing is on and works: this one is bought
    catalog.add(
        "images",
        download_time=datetime(2026, 2, 1, tzinfo=UTC),
        is_downloadable=True,
        file_size=FILE,
    )
    syncd = Syncd(tmp_path, simulated(catalog))
    syncd.env.update({**ON, "SYNCD_SYNC__RELICENSE_BUDGET": "5"})
    # every redownload request answered 500: the downloadable license cannot be fetched
    syncd.sim.add_fault("POST", r"/licenses/[^/]+/downloads$", status=500, times=1000)
    for run in range(2):  # the second run retries the failed license: still no relicensing
        before = len(syncd.sim.api_requests())
        done = syncd.sync("--media", "images")
        assert done.summary["relicensed"] == (1 if run == 0 else 0), done.summary
        assert done.summary["failed"] == 1 and done.summary["downloaded"] == 0, done.summary
        requests = syncd.sim.license_requests()
        assert len(requests) == 1 and syncd.sim.credits_spent() == 1  # the locked one only
        assert syncd.sim.credits_by_media() == {("images", requests[0].grants[0].media_id): 1}
        assert requests_by_kind(syncd.sim, before).get("redownload", 0) >= 1  # it was tried
    with sqlite3.connect(syncd.db_path) as db:
        rows = db.execute(
            "select status, reason, is_downloadable from licenses where status != 'stored'"
        ).fetchall()
    assert len(rows) == 1 and rows[0][0] == "failed" and rows[0][2] == 1, rows
    assert "redownload failed" in rows[0][1], rows
    assert [state for _, state, _ in intents(syncd)] == ["confirmed"]
    assert len(syncd.stored_files()) == 1
