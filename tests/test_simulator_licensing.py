"""The simulator's subscriptions and licensing endpoints, over real HTTP."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from syncd.simulator import Catalog, Simulator

TOKEN = "demo-token"
IMAGE = "59656357"  # licensed in the example catalog
VIDEO = "2140697"
AUDIO = "591623"
EDITORIAL = "9804979n"


@pytest.fixture
def sim():
    with Simulator(Catalog.example(), token=TOKEN) as simulator:
        yield simulator


def post(api, sim, stream, body, **params) -> requests.Response:
    return api.post(f"{sim.base_url}/v2/{stream}/licenses", json=body, params=params)


def refused(answer: requests.Response, path: str) -> None:
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["message"]
    assert body["errors"][0]["path"] == path, body


def downloads_left(sim, subscription_id: str) -> int:
    sub = sim.catalog.subscription(subscription_id)
    assert sub is not None
    return sub.downloads_left


# -- subscriptions ---------------------------------------------------------------------------


def test_default_subscriptions_cover_each_kind_of_media(sim, api):
    data = api.get(f"{sim.base_url}/v2/user/subscriptions").json()["data"]
    assert [sub["id"] for sub in data] == ["s8906043", "s8241443", "s7715063", "s9012345"]
    images = data[0]
    assert images["allotment"]["downloads_left"] == 100
    assert {f["size"] for f in images["formats"]} == {
        "small",
        "medium",
        "huge",
        "supersize",
        "vector",
    }
    assert {f["media_type"] for sub in data for f in sub["formats"]} == {
        "image",
        "video",
        "audio",
        "editorial",
    }


def test_added_subscriptions_show_their_kind_metadata_and_expiry(sim, api):
    sim.catalog.clear_subscriptions()
    sim.catalog.add_subscription(
        "s1", kind="enterprise", sizes=("small",), required_metadata=("job", "client")
    )
    sim.catalog.add_subscription("s2", kind="api", media="videos", expires="2030-01-01T00:00:00Z")
    with pytest.raises(ValueError):
        sim.catalog.add_subscription("s1")
    sim.catalog.add_subscription("s1", replace=True, downloads_left=3, sizes=("medium",))
    data = api.get(f"{sim.base_url}/v2/user/subscriptions").json()["data"]
    assert [sub["id"] for sub in data] == ["s1", "s2"]
    assert data[0]["metadata"] == {} and data[0]["allotment"]["downloads_left"] == 3
    assert [f["size"] for f in data[0]["formats"]] == ["medium"]
    assert data[1]["metadata"] == {"customer_id": {"is_required": True, "name": "customer_id"}}
    assert data[1]["expiration_time"] == "2030-01-01T00:00:00+00:00"
    assert data[1]["asset_type"] == "videos"


# -- granting ---------------------------------------------------------------------------------


def test_a_license_is_recorded_charged_and_downloadable(sim, api):
    before = datetime.now(UTC).replace(microsecond=0)
    answer = post(
        api,
        sim,
        "images",
        {"images": [{"image_id": IMAGE, "size": "medium"}]},
        subscription_id="s8906043",
    )
    assert answer.status_code == 200, answer.text
    [item] = answer.json()["data"]
    assert item["image_id"] == IMAGE and item["allotment_charge"] == 1
    assert requests.get(item["download"]["url"]).content
    assert len(requests.get(item["download"]["url"]).content) == sim.expected_size(
        "images", IMAGE, "medium"
    )
    assert sim.credits_spent() == 1 and sim.credits_spent(media_id=IMAGE) == 1
    assert sim.credits_by_media() == {("images", IMAGE): 1}
    assert downloads_left(sim, "s8906043") == 99
    history = api.get(
        f"{sim.base_url}/v2/images/licenses",
        params={"image_id": IMAGE, "start_date": before.isoformat()},
    ).json()["data"]
    assert [lic["id"] for lic in history] == [item["license_id"]]
    assert history[0]["subscription_id"] == "s8906043"
    assert history[0]["image"]["format"]["size"] == "medium"
    newest = api.get(f"{sim.base_url}/v2/images/licenses").json()["data"][0]
    assert newest["id"] == item["license_id"]
    other = api.get(
        f"{sim.base_url}/v2/images/licenses",
        params={"image_id": "1079756147", "start_date": before.isoformat()},
    ).json()
    assert other["total_count"] == 0
    [request] = sim.license_requests()
    assert request.body == {"images": [{"image_id": IMAGE, "size": "medium"}]}
    assert request.query == {"subscription_id": ["s8906043"]} and request.status == 200


def test_every_stream_grants_with_its_own_id_key(sim, api):
    video = post(
        api,
        sim,
        "videos",
        {"videos": [{"video_id": VIDEO, "size": "hd", "subscription_id": "s8241443"}]},
    )
    audio = post(api, sim, "audio", {"audio": [{"audio_id": AUDIO}]}, license="audio_platform")
    editorial = post(
        api,
        sim,
        "editorial/images",
        {
            "country": "USA",
            "editorial": [{"editorial_id": EDITORIAL, "license": "premier_editorial_all_digital"}],
        },
    )
    assert video.json()["data"][0]["video_id"] == VIDEO
    assert audio.json()["data"][0]["audio_id"] == AUDIO
    assert editorial.json()["data"][0]["editorial_id"] == EDITORIAL
    assert sim.credits_by_media() == {
        ("videos", VIDEO): 1,
        ("audio", AUDIO): 1,
        ("editorial/images", EDITORIAL): 1,
    }
    lic = api.get(f"{sim.base_url}/v2/audio/licenses", params={"audio_id": AUDIO}).json()["data"]
    assert lic[0]["id"] == audio.json()["data"][0]["license_id"]
    assert lic[0]["license"] == "audio_platform"
    assert downloads_left(sim, "s7715063") == 99 and downloads_left(sim, "s9012345") == 99


def test_editorial_videos_license(api):
    catalog = Catalog.generate(3, counts={"editorial/videos": 2})
    media_id = catalog.history("editorial/videos")[0].media_id
    with Simulator(catalog, token=TOKEN) as sim:
        body = {
            "country": "GB",
            "editorial": [
                {"editorial_id": media_id, "license": "premier_editorial_video_digital_only"}
            ],
        }
        answer = post(api, sim, "editorial/videos", body)
        assert answer.status_code == 200, answer.text
        assert sim.credits_spent("editorial/videos", media_id) == 1
        body["editorial"][0]["license"] = "premier_editorial_all_digital"  # not a video one
        refused(post(api, sim, "editorial/videos", body), "$.editorial[0].license")


# -- the 400 rules: each wrong body refused, the right one accepted -------------------------


def api_subscription(sim):
    sim.catalog.add_subscription("sapi", kind="api")


def enterprise_subscription(sim):
    sim.catalog.add_subscription("sent", kind="enterprise", required_metadata=("job", "client"))


def editorial_image(sim):
    sim.catalog.set_details("images", IMAGE, {"is_editorial": True}, merge=True)


def one_per_request(sim):
    sim.catalog.add_subscription("sone", one_per_request=True)


def small_only(sim):
    sim.catalog.add_subscription("ssmall", sizes=("small",))


def expired(sim):
    sim.catalog.add_subscription("sold", expires=datetime(2020, 1, 1, tzinfo=UTC))


def empty(sim):
    sim.catalog.add_subscription("sempty", downloads_left=0)


def nothing(sim):
    pass


TWO = [{"image_id": IMAGE}, {"image_id": "1079756147"}]
API_ITEM = {"image_id": IMAGE, "price": 0, "metadata": {"customer_id": "c1"}}
EDITORIAL_OK = {
    "country": "USA",
    "editorial": [{"editorial_id": EDITORIAL, "license": "premier_editorial_all_digital"}],
}

RULES = [
    # (setup, stream, wrong body, wrong query, path refused, right body, right query)
    (
        "api price",
        api_subscription,
        "images",
        {"images": [{"image_id": IMAGE, "metadata": {"customer_id": "c1"}}]},
        {"subscription_id": "sapi"},
        "$.images[0].price",
        {"images": [API_ITEM]},
        {"subscription_id": "sapi"},
    ),
    (
        "api customer_id",
        api_subscription,
        "images",
        {"images": [{"image_id": IMAGE, "price": 12.5, "metadata": {}}]},
        {"subscription_id": "sapi"},
        "$.images[0].metadata.customer_id",
        {"images": [API_ITEM]},
        {"subscription_id": "sapi"},
    ),
    (
        "api default subscription",
        api_subscription,
        "images",
        {"images": [{"image_id": IMAGE}]},
        {},
        "$.images[0].price",
        {"images": [API_ITEM]},
        {},
    ),
    (
        "api one image",
        api_subscription,
        "images",
        {"images": [API_ITEM, {**API_ITEM, "image_id": "1079756147"}]},
        {"subscription_id": "sapi"},
        "$.images",
        {"images": [API_ITEM]},
        {"subscription_id": "sapi"},
    ),
    (
        "enterprise metadata",
        enterprise_subscription,
        "images",
        {"images": [{"image_id": IMAGE, "metadata": {"job": "j"}}]},
        {"subscription_id": "sent"},
        "$.images[0].metadata.client",
        {"images": [{"image_id": IMAGE, "metadata": {"job": "j", "client": ""}}]},
        {"subscription_id": "sent"},
    ),
    (
        "editorial acknowledgement",
        editorial_image,
        "images",
        {"images": [{"image_id": IMAGE}]},
        {"subscription_id": "s8906043"},
        "$.images[0].editorial_acknowledgement",
        {"images": [{"image_id": IMAGE, "editorial_acknowledgement": True}]},
        {"subscription_id": "s8906043"},
    ),
    (
        "one per request",
        one_per_request,
        "images",
        {"images": TWO},
        {"subscription_id": "sone"},
        "$.images",
        {"images": TWO[:1]},
        {"subscription_id": "sone"},
    ),
    (
        "size not covered",
        small_only,
        "images",
        {"images": [{"image_id": IMAGE}]},
        {"subscription_id": "ssmall"},
        "$.images[0].size",
        {"images": [{"image_id": IMAGE, "size": "small"}]},
        {"subscription_id": "ssmall"},
    ),
    (
        "expired",
        expired,
        "images",
        {"images": [{"image_id": IMAGE}]},
        {"subscription_id": "sold"},
        "$.images[0].subscription_id",
        {"images": [{"image_id": IMAGE}]},
        {"subscription_id": "s8906043"},
    ),
    (
        "no downloads left",
        empty,
        "images",
        {"images": [{"image_id": IMAGE, "subscription_id": "sempty"}]},
        {},
        "$.images[0].subscription_id",
        {"images": [{"image_id": IMAGE, "subscription_id": "s8906043"}]},
        {},
    ),
    (
        "unknown subscription",
        nothing,
        "images",
        {"images": [{"image_id": IMAGE}]},
        {"subscription_id": "s404"},
        "$.images[0].subscription_id",
        {"images": [{"image_id": IMAGE}]},
        {"subscription_id": "s8906043"},
    ),
    (
        "no subscription given, no API one",
        nothing,
        "videos",
        {"videos": [{"video_id": VIDEO}]},
        {},
        "$.videos[0].subscription_id",
        {"videos": [{"video_id": VIDEO}]},
        {"subscription_id": "s8241443"},
    ),
    (
        "wrong media",
        nothing,
        "videos",
        {"videos": [{"video_id": VIDEO}]},
        {"subscription_id": "s8906043"},
        "$.videos[0].subscription_id",
        {"videos": [{"video_id": VIDEO}]},
        {"subscription_id": "s8241443"},
    ),
    (
        "audio license",
        nothing,
        "audio",
        {"audio": [{"audio_id": AUDIO}]},
        {},
        "$.audio[0].license",
        {"audio": [{"audio_id": AUDIO, "license": "premier_music_basic"}]},
        {},
    ),
    (
        "editorial country",
        nothing,
        "editorial/images",
        {"editorial": EDITORIAL_OK["editorial"]},
        {},
        "$.country",
        EDITORIAL_OK,
        {},
    ),
    (
        "editorial license",
        nothing,
        "editorial/images",
        {"country": "USA", "editorial": [{"editorial_id": EDITORIAL}]},
        {},
        "$.editorial[0].license",
        EDITORIAL_OK,
        {},
    ),
    (
        "missing id",
        nothing,
        "images",
        {"images": [{"size": "huge"}]},
        {"subscription_id": "s8906043"},
        "$.images[0].image_id",
        {"images": [{"image_id": IMAGE}]},
        {"subscription_id": "s8906043"},
    ),
    (
        "five metadata fields",
        nothing,
        "images",
        {"images": [{"image_id": IMAGE, "metadata": {str(n): "" for n in range(5)}}]},
        {"subscription_id": "s8906043"},
        "$.images[0].metadata",
        {"images": [{"image_id": IMAGE, "metadata": {str(n): "" for n in range(4)}}]},
        {"subscription_id": "s8906043"},
    ),
]


@pytest.mark.parametrize(
    "setup, stream, wrong, wrong_query, path, right, right_query",
    [rule[1:] for rule in RULES],
    ids=[rule[0] for rule in RULES],
)
def test_a_rule_refuses_the_wrong_body_and_accepts_the_right_one(
    sim, api, setup, stream, wrong, wrong_query, path, right, right_query
):
    setup(sim)
    left_before = {sub.id: sub.downloads_left for sub in sim.catalog.subscriptions()}
    refused(post(api, sim, stream, wrong, **wrong_query), path)
    assert sim.credits_spent() == 0 and sim.grants() == []
    assert {sub.id: sub.downloads_left for sub in sim.catalog.subscriptions()} == left_before
    assert sim.license_requests()[-1].status == 400
    answer = post(api, sim, stream, right, **right_query)
    assert answer.status_code == 200, answer.text
    assert all("error" not in item for item in answer.json()["data"])
    assert sim.credits_spent() == len(answer.json()["data"]) >= 1


def test_a_body_that_is_not_json_is_refused(sim, api):
    answer = api.post(
        f"{sim.base_url}/v2/images/licenses",
        data=b"{images",
        headers={"Content-Type": "application/json"},
    )
    refused(answer, "$.body")
    refused(post(api, sim, "images", {"images": []}), "$.images")


# -- per-item errors ---------------------------------------------------------------------------


def test_an_unknown_asset_fails_only_its_item(sim, api):
    body = {"images": [{"image_id": "404404"}, {"image_id": IMAGE}]}
    data = post(api, sim, "images", body, subscription_id="s8906043").json()["data"]
    assert data[0] == {"image_id": "404404", "error": "Asset 404404 was not found"}
    assert "error" not in data[1] and data[1]["allotment_charge"] == 1
    assert sim.credits_spent() == 1 and downloads_left(sim, "s8906043") == 99


def test_downloads_running_out_mid_request_fail_the_rest(sim, api):
    sim.catalog.add_subscription("stwo", downloads_left=2)
    body = {"images": [{"image_id": i} for i in (IMAGE, "1079756147", "114350371")]}
    data = post(api, sim, "images", body, subscription_id="stwo", size="small").json()["data"]
    assert ["error" in item for item in data] == [False, False, True]
    assert "no downloads left" in data[2]["error"]
    assert sim.credits_spent() == 2 and downloads_left(sim, "stwo") == 0
    refused(post(api, sim, "images", body, subscription_id="stwo"), "$.images[0].subscription_id")


# -- hooks: the outcome unknown to the client, charged once --------------------------------


CLIENT = """
import sys, requests
requests.post(sys.argv[1], json={"images": [{"image_id": sys.argv[2]}]},
              headers={"Authorization": "Bearer demo-token"}, timeout=60)
"""


def test_a_held_answer_lets_the_client_die_after_the_grant(sim, api):
    hold = sim.hold_next_license("images")
    url = f"{sim.base_url}/v2/images/licenses?subscription_id=s8906043"
    client = subprocess.Popen([sys.executable, "-c", CLIENT, url, IMAGE])
    try:
        assert hold.wait_reached(20)
        assert client.poll() is None  # still waiting for the answer
        client.send_signal(signal.SIGKILL)
        client.wait(10)
    finally:
        client.kill()
    assert sim.credits_spent() == 1 and downloads_left(sim, "s8906043") == 99
    assert len(sim.license_requests()) == 1
    history = api.get(f"{sim.base_url}/v2/images/licenses", params={"image_id": IMAGE}).json()
    assert history["data"][0]["id"] == sim.grants()[0].license_id
    hold.release()
    # the hold was used up: the next request is answered at once
    answer = post(api, sim, "images", {"images": [{"image_id": IMAGE}]}, subscription_id="s8906043")
    assert answer.status_code == 200 and sim.credits_spent() == 2


def test_a_held_answer_is_sent_on_release(sim, api):
    hold = sim.hold_next_license()
    results: list[requests.Response] = []
    import threading

    thread = threading.Thread(
        target=lambda: results.append(
            post(api, sim, "audio", {"audio": [{"audio_id": AUDIO, "license": "audio_platform"}]})
        )
    )
    thread.start()
    assert hold.wait_reached(10)
    time.sleep(0.2)
    assert results == [] and sim.credits_spent() == 1
    hold.release()
    thread.join(10)
    assert results[0].status_code == 200 and results[0].json()["data"][0]["audio_id"] == AUDIO
    assert sim.credits_spent() == 1


def test_a_timed_out_licensing_request_is_charged_once(sim, api):
    sim.time_out_next_license("videos", delay_s=5)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.post(
            f"{sim.base_url}/v2/videos/licenses",
            params={"subscription_id": "s8241443"},
            json={"videos": [{"video_id": VIDEO}]},
            timeout=0.5,
        )
    assert time.monotonic() - started < 3
    assert sim.credits_spent("videos", VIDEO) == 1 and downloads_left(sim, "s8241443") == 99
    assert (
        api.get(f"{sim.base_url}/v2/videos/licenses", params={"video_id": VIDEO}).json()["data"][0][
            "subscription_id"
        ]
        == "s8241443"
    )


def test_a_reset_after_the_grant_is_charged_once(sim, api):
    sim.reset_next_license("images")
    with pytest.raises(requests.ConnectionError):
        post(api, sim, "images", {"images": [{"image_id": IMAGE}]}, subscription_id="s8906043")
    assert sim.credits_spent() == 1 and len(sim.grants()) == 1
    assert sim.api_requests("POST", "/v2/images/licenses")[-1].status == 0
    assert downloads_left(sim, "s8906043") == 99


def test_stop_ends_a_hold_kept_for_ever(api):
    sim = Simulator(Catalog.example(), token=TOKEN).start()
    hold = sim.hold_next_license()
    import threading

    errors: list[Exception] = []

    def call():
        try:
            post(api, sim, "images", {"images": [{"image_id": IMAGE}]}, subscription_id="s8906043")
        except requests.RequestException as error:
            errors.append(error)

    thread = threading.Thread(target=call)
    thread.start()
    assert hold.wait_reached(10)
    sim.stop()
    thread.join(10)
    assert not thread.is_alive() and errors


# -- the sandbox --------------------------------------------------------------------------------


def test_the_sandbox_grants_without_spending(api):
    with Simulator(Catalog.example(), token=TOKEN, sandbox=True) as sim:
        answer = post(
            api, sim, "images", {"images": [{"image_id": IMAGE}]}, subscription_id="s8906043"
        )
        [item] = answer.json()["data"]
        assert item["allotment_charge"] == 1 and "license_id" not in item
        assert requests.get(item["download"]["url"]).status_code == 200
        assert sim.sandbox_credits() == 1 and sim.credits_spent() == 0
        assert downloads_left(sim, "s8906043") == 100
        assert api.get(f"{sim.base_url}/v2/images/licenses").json()["total_count"] == 6
        refused(
            post(api, sim, "images", {"images": [{"image_id": IMAGE}]}, subscription_id="s404"),
            "$.images[0].subscription_id",
        )
        audio = post(
            api, sim, "audio", {"audio": [{"audio_id": AUDIO, "license": "audio_platform"}]}
        )
        assert audio.status_code == 403


def test_license_time_is_to_the_second_and_follows_the_catalog_clock(sim, api):
    moment = datetime(2031, 5, 6, 7, 8, 9, 500_000, tzinfo=UTC)
    sim.set_now(moment)
    post(api, sim, "images", {"images": [{"image_id": IMAGE}]}, subscription_id="s8906043")
    lic = sim.catalog.license(sim.grants()[0].license_id)
    assert lic is not None and lic.time == moment.replace(microsecond=0)
    found = api.get(
        f"{sim.base_url}/v2/images/licenses",
        params={"image_id": IMAGE, "start_date": (moment - timedelta(seconds=1)).isoformat()},
    ).json()
    assert found["total_count"] == 1
