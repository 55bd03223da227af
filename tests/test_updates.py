"""Keeping the DAM current, end to end against the simulator: asset details in the sidecars,
the /updated streams (windows, marks, ties, downtime), deletions with each
``updates.on_deletion``, and what updates for assets syncd does not hold cost."""

from __future__ import annotations

import math
import sqlite3
from datetime import UTC, date, datetime, timedelta

from syncd.details import IDS_PER_REQUEST
from syncd.simulator import Catalog
from tests.conftest import Syncd, requests_by_kind

FILE = 2500


def images(count: int, seed: int = 7) -> Catalog:
    catalog = Catalog(seed=seed)
    for n in range(count):
        catalog.add(
            "images",
            download_time=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n),
            file_size=FILE,
        )
    return catalog


def media_ids(syncd: Syncd, media_type: str = "images") -> list[str]:
    return sorted({lic.media_id for lic in syncd.sim.catalog.history(media_type)})


def db(syncd: Syncd, query: str, *args) -> list[tuple]:
    with sqlite3.connect(syncd.db_path) as connection:
        return connection.execute(query, args).fetchall()


def age_the_mark(syncd: Syncd, stream: str, days: int) -> datetime:
    """What ``days`` of downtime leave: the stream's mark that long ago."""
    old = (datetime.now(UTC) - timedelta(days=days)).replace(microsecond=0, tzinfo=None)
    with sqlite3.connect(syncd.db_path) as connection:
        connection.execute(
            "update update_state set mark_time = ?, mark_ids = '[]' where stream = ?",
            (old.isoformat(sep=" "), stream),
        )
    return old.replace(tzinfo=UTC)


def window_of(record) -> tuple[date, date]:
    return (
        date.fromisoformat(record.query["start_date"][0]),
        date.fromisoformat(record.query["end_date"][0]),
    )


# --- details ----------------------------------------------------------------------------------


def test_details_cost_ceil_n_over_ids_per_request_and_land_in_the_sidecars(tmp_path, simulated):
    n = 2 * IDS_PER_REQUEST + 37
    syncd = Syncd(tmp_path, simulated(images(n)))
    done = syncd.sync("--media", "images")
    assert done.returncode == 0, done.stderr
    asked = syncd.sim.detail_requests("images")
    assert len(asked) == math.ceil(n / IDS_PER_REQUEST) == 3
    assert sorted(syncd.sim.detail_ids_requested("images")) == media_ids(syncd)  # each once
    assert all(r.query.get("view") == ["full"] for r in asked)
    for media_id in media_ids(syncd)[:: n // 7]:
        sidecar = syncd.sidecar("images", media_id)
        assert sidecar["details"] == syncd.sim.catalog.details("images", media_id)
        assert sidecar["details"]["description"]
    # known details are not asked for again
    syncd.sim.reset_log()
    again = syncd.sync("--media", "images")
    assert again.returncode == 0, again.stderr
    assert syncd.sim.detail_requests("images") == []


def test_editorial_details_are_asked_one_by_one_with_the_country(tmp_path, simulated):
    catalog = Catalog(seed=3)
    for _ in range(3):
        catalog.add("editorial/images", file_size=FILE)
    syncd = Syncd(tmp_path, simulated(catalog))
    done = syncd.sync("--media", "editorial/images", env={"SYNCD_UPDATES__COUNTRY": "GBR"})
    assert done.returncode == 0, done.stderr
    asked = syncd.sim.detail_requests("editorial/images")
    assert len(asked) == 3 and all(r.query["country"] == ["GBR"] for r in asked)
    for media_id in media_ids(syncd, "editorial/images"):
        details = syncd.sidecar("editorial/images", media_id)["details"]
        assert details == syncd.sim.catalog.details("editorial/images", media_id) is not None


def test_a_failed_detail_request_fails_no_file_and_is_tried_again(tmp_path, simulated):
    syncd = Syncd(tmp_path, simulated(images(5)))
    syncd.sim.add_fault("GET", r"^/v2/images$", status=500, times=50)
    done = syncd.sync("--media", "images")
    assert done.returncode == 0, done.stderr
    assert done.summary["downloaded"] == 5 and done.summary["failed"] == 0
    assert all(syncd.sidecar("images", m)["details"] is None for m in media_ids(syncd))
    syncd.sim.clear_faults()
    again = syncd.sync("--media", "images")
    assert again.returncode == 0, again.stderr
    assert len(syncd.sim.detail_requests("images")) > 1  # the failed ones, then this run's
    for media_id in media_ids(syncd):
        assert syncd.sidecar("images", media_id)["details"] == syncd.sim.catalog.details(
            "images", media_id
        )


# --- deletions --------------------------------------------------------------------------------


def held_image(tmp_path, simulated, **env: str) -> tuple[Syncd, str, str]:
    syncd = Syncd(tmp_path, simulated(images(3)))
    syncd.env.update(env)
    first = syncd.sync("--media", "images")
    assert first.returncode == 0, first.stderr
    media_id = media_ids(syncd)[1]
    key = next(k for k in syncd.stored_files() if k.startswith(f"images/{media_id}/"))
    return syncd, media_id, key


def delete_upstream(syncd: Syncd, media_id: str) -> None:
    syncd.sim.catalog.add_update("images", media_id, datetime.now(UTC), ("deletion",))


def test_a_deletion_with_keep_marks_the_sidecar_deleted_and_keeps_the_file(tmp_path, simulated):
    syncd, media_id, key = held_image(tmp_path, simulated)
    delete_upstream(syncd, media_id)
    done = syncd.sync("--media", "images")
    assert done.returncode == 0, done.stderr
    assert syncd.sidecar("images", media_id)["status"] == "deleted"
    assert key in syncd.stored_files()
    assert db(syncd, "select status from assets where media_id = ?", media_id) == [("deleted",)]
    others = [m for m in media_ids(syncd) if m != media_id]
    assert all(syncd.sidecar("images", m)["status"] == "active" for m in others)


def test_quarantine_moves_the_file_and_its_xmp_under_quarantine(tmp_path, simulated):
    syncd, media_id, key = held_image(
        tmp_path,
        simulated,
        SYNCD_UPDATES__ON_DELETION="quarantine",
        SYNCD_STORAGE__XMP_SIDECARS="append",
    )
    data = (syncd.root / key).read_bytes()
    assert (syncd.root / f"{key}.xmp").is_file()
    delete_upstream(syncd, media_id)
    done = syncd.sync("--media", "images")
    assert done.returncode == 0, done.stderr
    assert key not in syncd.stored_files()
    moved = syncd.root / "quarantine" / key
    assert moved.read_bytes() == data
    assert (syncd.root / "quarantine" / f"{key}.xmp").is_file()
    assert not (syncd.root / f"{key}.xmp").exists()
    sidecar = syncd.sidecar("images", media_id)
    assert sidecar["status"] == "deleted"
    assert [f["key"] for f in sidecar["files"]] == [f"quarantine/{key}"]
    # verify finds the quarantined file where the ledger says it is
    verified = syncd.run("verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_delete_removes_the_file_and_it_is_never_fetched_again(tmp_path, simulated):
    syncd, media_id, key = held_image(tmp_path, simulated, SYNCD_UPDATES__ON_DELETION="delete")
    delete_upstream(syncd, media_id)
    done = syncd.sync("--media", "images")
    assert done.returncode == 0, done.stderr
    assert key not in syncd.stored_files() and not (syncd.root / "quarantine").exists()
    assert syncd.sidecar("images", media_id)["files"] == []
    # a new license for the deleted asset, and runs after: nothing of it is fetched again
    syncd.sim.add_license("images", media_id=media_id, file_size=FILE)
    syncd.sim.reset_log()
    later = syncd.sync("--media", "images")
    assert later.returncode == 0, later.stderr
    assert later.summary["new_licenses"] == 1 and later.summary["downloaded"] == 0
    assert later.summary["unavailable"] == 1
    assert [r for r in syncd.sim.api_requests("POST") if media_id in r.path] == []
    assert not any(k.startswith(f"images/{media_id}/") for k in syncd.stored_files())
    reasons = db(syncd, "select distinct reason from licenses where media_id = ?", media_id)
    assert any("deleted" in (reason or "") for (reason,) in reasons), reasons


def test_an_edit_refreshes_the_details_and_the_xmp(tmp_path, simulated):
    syncd, media_id, key = held_image(tmp_path, simulated, SYNCD_STORAGE__XMP_SIDECARS="replace")
    xmp = syncd.root / key.rsplit(".", 1)[0]
    xmp = xmp.with_name(xmp.name + ".xmp")
    before = xmp.read_text()
    syncd.sim.catalog.add_update(
        "images",
        media_id,
        datetime.now(UTC),
        ("edit",),
        details={"description": "Edited: a quiet harbour at dawn", "keywords": ["harbour"]},
    )
    syncd.sim.reset_log()
    done = syncd.sync("--media", "images")
    assert done.returncode == 0, done.stderr
    assert syncd.sim.detail_ids_requested("images") == [media_id]  # the edited one alone
    details = syncd.sidecar("images", media_id)["details"]
    assert details["description"] == "Edited: a quiet harbour at dawn"
    after = xmp.read_text()
    assert after != before and "Edited: a quiet harbour at dawn" in after


# --- the /updated streams -----------------------------------------------------------------------


def test_windows_cover_every_zone_and_an_hour_old_mark_takes_one_window_at_any_hour():
    from syncd.updates import windows

    day = datetime(2026, 12, 5, tzinfo=UTC)
    for minutes in range(0, 24 * 60, 5):
        now = day + timedelta(minutes=minutes)
        for age in (timedelta(hours=1), timedelta(days=1), timedelta(days=10), timedelta(0)):
            floor = now - age
            walked = list(windows(floor, now))
            assert all(0 < (end - start).days <= 3 for start, end in walked), walked
            # newest first, each overlapping the next by exactly one day
            for (start, _), (_, older_end) in zip(walked, walked[1:], strict=False):
                assert older_end - start == timedelta(days=1), walked
            covered = {s + timedelta(days=d) for s, e in walked for d in range((e - s).days)}
            # every date the floor or now (and all between) have in any zone, UTC-12..UTC+14
            wanted = {
                (moment + timedelta(hours=offset)).date()
                for offset in (-12, 0, 14)
                for moment in (floor, now)
            }
            low, high = min(wanted), max(wanted)
            wanted |= {low + timedelta(days=d) for d in range((high - low).days)}
            assert wanted <= covered, (floor, now, walked)
            assert min(covered) == low and max(covered) == high  # and no more
            if age <= timedelta(hours=1):
                assert len(walked) == 1, (now, walked)


def test_after_ten_days_down_windows_of_three_days_miss_no_update_ties_included(
    tmp_path, simulated
):
    syncd = Syncd(tmp_path, simulated(images(12)))
    first = syncd.sync("--media", "images")
    assert first.returncode == 0, first.stderr
    mark = age_the_mark(syncd, "images", days=10)
    held = media_ids(syncd)
    now = datetime.now(UTC).replace(microsecond=0)
    # an edit of each held image spread over the ten days; four of them in one second, with
    # 2500 updates of assets syncd does not hold in that same second (pages of 2000 cut it)
    tie = mark + timedelta(days=4, seconds=17)
    edits = {}
    for n, media_id in enumerate(held):
        when = tie if n < 4 else mark + (now - mark) * (n + 1) / (len(held) + 1)
        edits[media_id] = f"edited {n} at {when.isoformat()}"
        syncd.sim.catalog.add_update(
            "images", media_id, when, ("edit",), details={"description": edits[media_id]}
        )
    syncd.sim.catalog.add_updates("images", ((f"9{n:08d}", tie) for n in range(2500)))
    syncd.sim.reset_log()
    done = syncd.sync("--media", "images")
    assert done.returncode == 0, done.stderr
    windows = [window_of(r) for r in syncd.sim.updated_requests("images")]
    assert all(0 < (end - start).days <= 3 for start, end in windows), windows
    covered = set()
    for start, end in windows:
        covered |= {start + timedelta(days=d) for d in range((end - start).days)}
    wanted = {mark.date() + timedelta(days=d) for d in range((now.date() - mark.date()).days + 1)}
    assert wanted <= covered
    for media_id, description in edits.items():
        assert syncd.sidecar("images", media_id)["details"]["description"] == description
    assert sorted(syncd.sim.detail_ids_requested("images")) == held  # each edit applied once
    # the mark now stands: the next pass walks one window and applies nothing again
    syncd.sim.reset_log()
    again = syncd.sync("--media", "images")
    assert again.returncode == 0, again.stderr
    assert syncd.sim.detail_requests("images") == []
    assert len(syncd.sim.updated_requests("images")) == 1


def test_an_update_at_the_marks_own_second_is_applied_once(tmp_path, simulated):
    syncd = Syncd(tmp_path, simulated(images(3)))
    assert syncd.sync("--media", "images").returncode == 0
    one, two, three = media_ids(syncd)
    second = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)  # newer than now-1h
    syncd.sim.catalog.add_update("images", one, second, ("edit",), details={"description": "a"})
    assert syncd.sync("--media", "images").returncode == 0
    assert db(syncd, "select mark_ids from update_state where stream = 'images'") == [
        (f'["{one}"]',)
    ]
    # another update in that same second arrives later; the first is not applied again
    syncd.sim.catalog.add_update("images", two, second, ("edit",), details={"description": "b"})
    syncd.sim.reset_log()
    assert syncd.sync("--media", "images").returncode == 0
    assert syncd.sim.detail_ids_requested("images") == [two]
    assert syncd.sidecar("images", two)["details"]["description"] == "b"
    assert syncd.sidecar("images", three)["details"]["description"] != "b"


def test_updates_of_assets_not_held_cost_no_detail_requests(tmp_path, simulated):
    syncd = Syncd(tmp_path, simulated(images(100)))
    assert syncd.sync("--media", "images").returncode == 0
    held = media_ids(syncd)
    # all of them newer than the mark the first sync left (an hour before it)
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    others = ((f"8{n:08d}", when - timedelta(seconds=n % 300)) for n in range(20_000))
    syncd.sim.catalog.add_updates("images", others)
    syncd.sim.catalog.add_updates("images", ((m, when) for m in held))
    syncd.sim.reset_log()
    done = syncd.sync("--media", "images")
    assert done.returncode == 0, done.stderr
    sent = requests_by_kind(syncd.sim)
    updated = len(syncd.sim.updated_requests("images"))
    # the pages of one window, at any time of day (near a UTC midnight too)
    assert updated == math.ceil(20_100 / 2000)
    assert sent == {"list": 1, "updated": updated, "details": 1}  # 100 held: one request
    assert sorted(syncd.sim.detail_ids_requested("images")) == held


def test_an_api_without_the_updated_feed_fails_nothing(tmp_path, simulated):
    syncd = Syncd(tmp_path, simulated(images(2)))
    syncd.sim.add_fault("GET", r"/updated$", status=404, times=100)
    done = syncd.sync()
    assert done.returncode == 0, done.stderr
    assert "updates.unsupported" in done.stderr
    assert done.summary["downloaded"] == 2


def test_a_failing_updated_feed_fails_the_run_and_keeps_the_mark(tmp_path, simulated):
    syncd = Syncd(tmp_path, simulated(images(2)))
    syncd.env["SYNCD_API__MAX_RETRIES"] = "0"
    assert syncd.sync("--media", "images").returncode == 0
    mark = db(syncd, "select mark_time from update_state where stream = 'images'")
    syncd.sim.add_fault("GET", r"^/v2/images/updated$", action="badjson", times=100)
    done = syncd.sync("--media", "images")
    assert done.returncode == 1, done.stderr
    assert "images/updated" in done.stderr
    assert db(syncd, "select mark_time from update_state where stream = 'images'") == mark


# --- XMP sidecars written by a sync, read back by exiftool --------------------------------------


def test_xmp_sidecars_of_a_sync_read_back_in_exiftool_for_image_video_and_audio(
    tmp_path, simulated
):
    from tests.test_xmp import HOSTILE, LICENSOR, read_with_exiftool, without_xml_illegal

    catalog = Catalog(seed=11)
    for stream in ("images", "videos", "audio"):
        catalog.add(stream, file_size=FILE)
    image = catalog.history("images")[0]
    catalog.set_details(
        "images",
        image.media_id,
        {"description": HOSTILE, "keywords": ["a & b", "<tag>"]},
        merge=True,
    )
    syncd = Syncd(tmp_path, simulated(catalog))
    done = syncd.sync(env={"SYNCD_STORAGE__XMP_SIDECARS": "replace"})
    assert done.returncode == 0, done.stderr
    checked = set()
    for key in syncd.stored_files():
        media_type, media_id, name = key.rsplit("/", 2)
        packet = syncd.root / media_type / media_id / (name.rsplit(".", 1)[0] + ".xmp")
        tags = read_with_exiftool(tmp_path, packet.read_bytes(), name=f"{media_id}.xmp")
        details = syncd.sim.catalog.details(media_type, media_id)
        licenses = [
            lic for lic in syncd.sim.catalog.history(media_type) if lic.media_id == media_id
        ]
        assert tags["XMP-dc:Description"] == without_xml_illegal(details["description"])
        assert tags["XMP-dc:Subject"] == details["keywords"]
        assert tags["XMP-photoshop:Credit"] == "Shutterstock"
        assert tags["XMP-xmpRights:UsageTerms"] == ", ".join(
            dict.fromkeys(lic.license for lic in licenses)
        )
        assert tags["XMP-plus:Licensor"] == LICENSOR
        assert tags["XMP-plus:ImageSupplierImageID"] == media_id
        ids = tags["XMP-plus:LicensorTransactionID"]
        assert (ids if isinstance(ids, list) else [ids]) == [lic.id for lic in licenses]
        if media_type == "audio":
            assert tags["XMP-dc:Title"] == details["title"]
            assert tags["XMP-xmpDM:Artist"] == ", ".join(a["name"] for a in details["artists"])
        if media_type in ("audio", "videos"):
            assert "XMP-xmpDM:Duration" in tags
        checked.add(media_type)
    assert checked == {"images", "videos", "audio"}
    assert "<tag>" in syncd.sidecar("images", image.media_id)["details"]["keywords"]


def test_editorial_updates_follow_the_cursor_and_bring_their_details(tmp_path, simulated):
    catalog = Catalog(seed=5)
    for _ in range(2):
        catalog.add("editorial/images", file_size=FILE)
    syncd = Syncd(tmp_path, simulated(catalog))
    assert syncd.sync("--media", "editorial/images").returncode == 0
    edited, deleted = media_ids(syncd, "editorial/images")
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    # the two held items are the oldest of 1200 updates: three cursor pages of 500
    syncd.sim.catalog.add_update(
        "editorial/images", edited, when, ("edit",), details={"caption": "Caption, edited"}
    )
    syncd.sim.catalog.add_update("editorial/images", deleted, when, ("deletion",))
    newer = ((f"{n:07d}n", when + timedelta(seconds=1 + n % 600)) for n in range(1198))
    syncd.sim.catalog.add_updates("editorial/images", newer)
    syncd.sim.reset_log()
    done = syncd.sync("--media", "editorial/images")
    assert done.returncode == 0, done.stderr
    pages = syncd.sim.updated_requests("editorial/images")
    assert len(pages) == 3
    assert all(r.query["type"] == ["edit"] and r.query["country"] == ["USA"] for r in pages)
    assert [bool(r.query.get("cursor")) for r in pages] == [False, True, True]
    # the item came with the update: no detail request
    assert syncd.sim.detail_requests("editorial/images") == []
    assert syncd.sidecar("editorial/images", edited)["details"]["caption"] == "Caption, edited"
    assert syncd.sidecar("editorial/images", deleted)["status"] == "deleted"
    assert syncd.sidecar("editorial/images", edited)["status"] == "active"


def test_quarantine_set_later_moves_what_was_deleted_under_keep(tmp_path, simulated):
    """The deletion was recorded by an earlier run (under ``keep``); the operator turns
    quarantine on: the next run moves the file and rewrites the sidecar to say where."""
    syncd, media_id, key = held_image(tmp_path, simulated)
    delete_upstream(syncd, media_id)
    assert syncd.sync("--media", "images").returncode == 0
    assert key in syncd.stored_files()
    later = syncd.sync("--media", "images", env={"SYNCD_UPDATES__ON_DELETION": "quarantine"})
    assert later.returncode == 0, later.stderr
    assert key not in syncd.stored_files()
    assert (syncd.root / "quarantine" / key).is_file()
    sidecar = syncd.sidecar("images", media_id)
    assert [f["key"] for f in sidecar["files"]] == [f"quarantine/{key}"]
