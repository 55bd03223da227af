"""Each rule of the licensing request body (seed 002 "Licensing media", "Request metadata",
"Editorial media licensing"; seed 004's License*Request schemas) end to end: a real `syncd
sync` relicenses against the simulator, which refuses a body that breaks the rule (400, no
credit spent) and grants one that keeps it. Each test checks the credit spent and the file
stored, so a body without the rule's field fails it, and reads the body the simulator
received, so a field with the wrong value fails it too."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

from syncd.simulator import Catalog
from tests.conftest import Syncd

FILE = 3000
START = datetime(2026, 1, 1, tzinfo=UTC)


def relicensing(budget: int = 10, **extra: str) -> dict[str, str]:
    return {"SYNCD_SYNC__RELICENSE": "true", "SYNCD_SYNC__RELICENSE_BUDGET": str(budget), **extra}


def locked(catalog: Catalog, stream: str, count: int, **options) -> list[str]:
    """``count`` licenses of ``stream`` that cannot be redownloaded; their media ids."""
    ids = []
    for n in range(count):
        lic = catalog.add(
            stream,
            download_time=START + timedelta(minutes=len(ids) + 10 * n),
            is_downloadable=False,
            file_size=FILE,
            **options,
        )
        ids.append(lic.media_id)
    return ids


def granted(syncd: Syncd, stream: str) -> list:
    """The licensing requests of ``stream`` the simulator granted (status 200, a credit)."""
    return [r for r in syncd.sim.license_requests(stream) if r.status == 200 and r.grants]


def items(requests: list, key: str) -> list[dict]:
    return [item for request in requests for item in request.body[key]]


def reasons(syncd: Syncd) -> list[str]:
    with sqlite3.connect(syncd.db_path) as db:
        rows = db.execute("select reason from licenses where status != 'stored'").fetchall()
    return [reason or "" for (reason,) in rows]


# --- images and videos: subscription, size, API and enterprise subscriptions --------------------


def test_the_request_names_the_subscription_and_the_licenses_own_size(tmp_path, simulated):
    catalog = Catalog(seed=1)
    images = locked(catalog, "images", 1, size="medium")
    videos = locked(catalog, "videos", 1, size="hd")
    syncd = Syncd(tmp_path, simulated(catalog))
    done = syncd.sync("--media", "images,videos", env=relicensing())
    assert done.returncode == 0, done.stderr
    assert done.summary["relicensed"] == 2 and syncd.sim.credits_spent() == 2
    image = items(granted(syncd, "images"), "images")
    video = items(granted(syncd, "videos"), "videos")
    assert [(i["image_id"], i["size"]) for i in image] == [(images[0], "medium")]
    assert [(v["video_id"], v["size"]) for v in video] == [(videos[0], "hd")]
    sub_of = {s.id: s for s in catalog.subscriptions()}
    assert "images" in sub_of[image[0]["subscription_id"]].media
    assert "videos" in sub_of[video[0]["subscription_id"]].media
    # the new licenses are of the same sizes: the files stored are the sizes licensed
    new = [lic for stream in ("images", "videos") for lic in catalog.history(stream)[:1]]
    assert sorted(lic.size for lic in new) == ["hd", "medium"]
    assert len(syncd.stored_files()) == 2


def test_an_api_subscription_sends_price_and_customer_id_one_image_a_request(tmp_path, simulated):
    catalog = Catalog(seed=2)
    ids = locked(catalog, "images", 3)
    catalog.clear_subscriptions()
    catalog.add_subscription("s-api", kind="api", media="images")  # one item per request
    syncd = Syncd(tmp_path, simulated(catalog))
    env = relicensing(SYNCD_RELICENSE__CUSTOMER_ID="cust-7", SYNCD_RELICENSE__PRICE="12.5")
    done = syncd.sync("--media", "images", env=env)
    assert done.returncode == 0, done.stderr
    assert done.summary["relicensed"] == 3 and syncd.sim.credits_spent() == 3
    requests = granted(syncd, "images")
    assert [len(r.body["images"]) for r in requests] == [1, 1, 1]
    sent = items(requests, "images")
    assert sorted(i["image_id"] for i in sent) == sorted(ids)
    assert {i["price"] for i in sent} == {12.5}
    assert all(i["metadata"]["customer_id"] == "cust-7" for i in sent)
    assert all(i["subscription_id"] == "s-api" for i in sent)


def test_an_enterprise_subscriptions_required_metadata_comes_from_the_config(tmp_path, simulated):
    catalog = Catalog(seed=3)
    locked(catalog, "images", 2)
    catalog.clear_subscriptions()
    catalog.add_subscription(
        "s-ent",
        kind="enterprise",
        media="images",
        required_metadata=("purchase_order", "client"),
    )
    syncd = Syncd(tmp_path, simulated(catalog))
    without = syncd.sync("--media", "images", env=relicensing())
    assert without.returncode == 0, without.stderr
    assert syncd.sim.license_requests() == []  # nothing sent that the API must refuse
    assert without.summary["unavailable"] == 2
    assert all("purchase_order" in r and "client" in r for r in reasons(syncd)), reasons(syncd)

    fields = {"purchase_order": "PO-881", "client": "Spring campaign", "job": ""}
    env = relicensing(SYNCD_RELICENSE__METADATA=json.dumps(fields))
    done = syncd.sync("--media", "images", env=env)
    assert done.returncode == 0, done.stderr
    assert done.summary["relicensed"] == 2 and syncd.sim.credits_spent() == 2
    assert [i["metadata"] for i in items(granted(syncd, "images"), "images")] == [fields] * 2
    # the new licenses carry the metadata the subscription asked for
    assert [lic.metadata for lic in catalog.history("images")[:2]] == [fields] * 2


def test_an_editorial_image_licensed_through_the_image_endpoint_is_acknowledged(
    tmp_path, simulated
):
    catalog = Catalog(seed=4)
    editorial, plain = locked(catalog, "images", 2)
    catalog.set_details("images", editorial, {"model_released": {"code": 3}}, merge=True)
    catalog.set_details("images", plain, {"is_editorial": False}, merge=True)
    assert catalog.is_editorial("images", editorial)
    assert not catalog.is_editorial("images", plain)
    syncd = Syncd(tmp_path, simulated(catalog))
    done = syncd.sync("--media", "images", env=relicensing())
    assert done.returncode == 0, done.stderr
    assert done.summary["relicensed"] == 2 and syncd.sim.credits_spent() == 2
    sent = {i["image_id"]: i for i in items(granted(syncd, "images"), "images")}
    assert sent[editorial].get("editorial_acknowledgement") is True
    assert "editorial_acknowledgement" not in sent[plain]  # only where the asset is editorial


# --- editorial endpoints and audio ------------------------------------------------------------


def test_editorial_images_send_the_country_and_the_license_name(tmp_path, simulated):
    catalog = Catalog(seed=5)
    ids = locked(catalog, "editorial/images", 2)
    syncd = Syncd(tmp_path, simulated(catalog))
    without = syncd.sync("--media", "editorial/images", env=relicensing())
    assert without.returncode == 0, without.stderr
    assert syncd.sim.license_requests() == [] and without.summary["unavailable"] == 2
    assert all("editorial_license" in r for r in reasons(syncd)), reasons(syncd)

    env = relicensing(
        SYNCD_RELICENSE__EDITORIAL_LICENSE="premier_editorial_comp",
        SYNCD_UPDATES__COUNTRY="DEU",
    )
    done = syncd.sync("--media", "editorial/images", env=env)
    assert done.returncode == 0, done.stderr
    assert done.summary["relicensed"] == 2 and syncd.sim.credits_spent() == 2
    requests = granted(syncd, "editorial/images")
    assert {r.body["country"] for r in requests} == {"DEU"}
    sent = items(requests, "editorial")
    assert sorted(i["editorial_id"] for i in sent) == sorted(ids)
    assert {i["license"] for i in sent} == {"premier_editorial_comp"}
    assert len(syncd.stored_files()) == 2


def test_editorial_videos_send_the_country_and_a_video_license(tmp_path, simulated):
    catalog = Catalog(seed=6)
    ids = locked(catalog, "editorial/videos", 1)
    syncd = Syncd(tmp_path, simulated(catalog))
    env = relicensing(
        SYNCD_RELICENSE__EDITORIAL_LICENSE="premier_editorial_video_digital_only",
    )
    done = syncd.sync("--media", "editorial/videos", env=env)
    assert done.returncode == 0, done.stderr
    assert done.summary["relicensed"] == 1 and syncd.sim.credits_spent() == 1
    requests = granted(syncd, "editorial/videos")
    assert [r.body["country"] for r in requests] == ["USA"]  # updates.country's default
    assert [(i["editorial_id"], i["license"]) for i in items(requests, "editorial")] == [
        (ids[0], "premier_editorial_video_digital_only")
    ]
    assert len(syncd.stored_files()) == 1


def test_audio_carries_the_configured_license(tmp_path, simulated):
    catalog = Catalog(seed=7)
    ids = locked(catalog, "audio", 2)
    syncd = Syncd(tmp_path, simulated(catalog))
    env = relicensing(SYNCD_RELICENSE__AUDIO_LICENSE="premier_music_extended")
    done = syncd.sync("--media", "audio", env=env)
    assert done.returncode == 0, done.stderr
    assert done.summary["relicensed"] == 2 and syncd.sim.credits_spent() == 2
    sent = items(granted(syncd, "audio"), "audio")
    assert sorted(i["audio_id"] for i in sent) == sorted(ids)
    assert {i["license"] for i in sent} == {"premier_music_extended"}
    assert {lic.license for lic in catalog.history("audio")[:2]} == {"premier_music_extended"}
    assert len(syncd.stored_files()) == 2


# --- the answer ---------------------------------------------------------------------------------


def test_an_items_error_fails_that_item_only_and_spends_nothing_for_it(tmp_path, simulated):
    catalog = Catalog(seed=8)
    ids = locked(catalog, "images", 3)
    syncd = Syncd(tmp_path, simulated(catalog))
    newest = ids[-1]  # the license history is paged newest first: its need comes first
    refusal = {"data": [{"image_id": newest, "error": "Image is no longer available"}]}
    syncd.sim.add_fault("POST", r"^/v2/images/licenses$", status=200, body=refusal)
    done = syncd.sync("--media", "images", env=relicensing())
    assert done.summary["relicensed"] == 2 and syncd.sim.credits_spent() == 2
    assert syncd.sim.credits_spent(media_id=newest) == 0
    assert len(syncd.stored_files()) == 2
    assert any("no longer available" in r for r in reasons(syncd)), reasons(syncd)
    with sqlite3.connect(syncd.db_path) as db:
        states = dict(db.execute("select media_id, state from relicense_intents"))
    assert states[newest] == "failed" and [states[i] for i in ids[:2]] == ["confirmed"] * 2


def test_the_new_license_is_recorded_with_its_file_and_joins_the_sidecar(tmp_path, simulated):
    catalog = Catalog(seed=9)
    (media_id,) = locked(catalog, "images", 1)
    (old,) = [lic.id for lic in catalog.history("images")]
    syncd = Syncd(tmp_path, simulated(catalog))
    done = syncd.sync("--media", "images", env=relicensing())
    assert done.returncode == 0, done.stderr
    assert done.summary["relicensed"] == 1
    new = next(lic for lic in catalog.history("images") if lic.id != old)
    (key,) = syncd.stored_files()
    with sqlite3.connect(syncd.db_path) as db:
        rows = dict(db.execute("select license_id, status || ' ' || file_key from licenses"))
    assert rows == {old: f"stored {key}", new.id: f"stored {key}"}
    sidecar = json.loads((syncd.root / "images" / media_id / "metadata.json").read_text())
    listed = {lic["license_id"]: lic for lic in sidecar["licenses"]}
    assert set(listed) == {old, new.id}
    assert listed[new.id]["subscription_id"] == new.subscription_id
    # the next catch-up finds the new license known: nothing new, nothing fetched or bought
    syncd.sim.reset_log()
    again = syncd.sync("--media", "images", env=relicensing())
    assert again.returncode == 0, again.stderr
    assert again.summary["new_licenses"] == 0 and again.summary["relicensed"] == 0
    assert syncd.sim.credits_spent() == 1 and len(syncd.sim.license_requests()) == 1


def test_the_answers_allotment_charge_is_what_was_spent_and_what_the_budget_counts(
    tmp_path, simulated
):
    catalog = Catalog(seed=10)
    locked(catalog, "videos", 4)
    catalog.clear_subscriptions()
    catalog.add_subscription("s-4k", media="videos", allotment_charge=2)
    syncd = Syncd(tmp_path, simulated(catalog))
    done = syncd.sync("--media", "videos", env=relicensing(budget=5))
    assert done.returncode == 0, done.stderr
    # 2 + 2 credits; a third item, now known to cost 2, would overrun the budget of 5
    assert syncd.sim.credits_spent() == 4 and done.summary["credits_spent"] == 4
    assert done.summary["relicensed"] == 2 and done.summary["unavailable"] == 2
    assert sum(1 for r in reasons(syncd) if r.startswith("budget")) == 2, reasons(syncd)
    with sqlite3.connect(syncd.db_path) as db:
        charged = db.execute("select credits from relicense_intents where state = 'confirmed'")
        assert [c for (c,) in charged] == [2, 2]
    # a later run knows the charge from the database before its first answer: a budget of 1
    # buys nothing (rather than 2 credits), a budget of 2 buys one
    short = syncd.sync("--media", "videos", env=relicensing(budget=1))
    assert short.returncode == 0, short.stderr
    assert syncd.sim.credits_spent() == 4 and short.summary["relicensed"] == 0
    again = syncd.sync("--media", "videos", env=relicensing(budget=2))
    assert again.returncode == 0, again.stderr
    assert syncd.sim.credits_spent() == 6 and again.summary["relicensed"] == 1


def test_a_days_budget_holds_across_runs_and_counts_what_is_in_flight(tmp_path, simulated):
    catalog = Catalog(seed=11)
    locked(catalog, "images", 10)
    syncd = Syncd(tmp_path, simulated(catalog))
    env = relicensing(budget=10, SYNCD_RELICENSE__DAILY_BUDGET="3")
    done = syncd.sync("--media", "images", env=env)
    assert done.returncode == 0, done.stderr
    # four transfers plan ten needs before any intent is in the database: the day's budget
    # still stops at 3
    assert syncd.sim.credits_spent() == 3 and done.summary["relicensed"] == 3
    assert sum(1 for r in reasons(syncd) if "daily_budget" in r) == 7, reasons(syncd)
    again = syncd.sync("--media", "images", env=env)  # the same UTC day: nothing more
    assert again.returncode == 0, again.stderr
    assert syncd.sim.credits_spent() == 3 and again.summary["unavailable"] == 7
