"""The pure parts of relicensing: which subscription, which request body, what an answer
means (the end-to-end tests against the simulator are in tests/test_relicense.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from syncd.api.records import MalformedResponse
from syncd.config import load
from syncd.relicense import (
    CannotLicense,
    ItemRefused,
    NoSubscription,
    choose_subscription,
    is_editorial_asset,
    parse_result,
    parse_subscriptions,
    request_for,
)
from syncd.streams import LICENSE_STREAMS

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)


def sub(sid, *, media="image", sizes=("huge",), days=30, left=10, license="standard", **extra):
    return {
        "id": sid,
        "license": license,
        "description": extra.pop("description", "Standard subscription"),
        "expiration_time": (NOW + timedelta(days=days)).isoformat().replace("+00:00", "Z"),
        "allotment": {"downloads_left": left, "downloads_limit": 750},
        "formats": [{"media_type": media, "size": s, "format": "jpg"} for s in sizes],
        "metadata": extra.pop("metadata", {}),
        **extra,
    }


def subs(*items):
    return parse_subscriptions({"data": list(items)})


def test_the_subscription_that_expires_first_of_those_that_cover_the_need_is_chosen():
    found = subs(
        sub("s-late", days=90),
        sub("s-soon", days=5),
        sub("s-expired", days=-1),
        sub("s-empty", days=1, left=0),
        sub("s-video", media="video", sizes=("hd",), days=2),
        sub("s-small", sizes=("small",), days=3),
    )
    chosen = choose_subscription(found, "images", "huge", None, {}, NOW)
    assert chosen.id == "s-soon"
    # downloads left as this run counts them
    assert choose_subscription(found, "images", "huge", None, {"s-soon": 0}, NOW).id == "s-late"
    assert choose_subscription(found, "videos", "hd", None, {}, NOW).id == "s-video"


def test_no_subscription_that_fits_says_so_and_a_pinned_one_must_exist_and_fit():
    found = subs(sub("s1", sizes=("small",)), sub("s2", days=-3))
    with pytest.raises(NoSubscription, match="covers images size huge"):
        choose_subscription(found, "images", "huge", None, {}, NOW)
    with pytest.raises(NoSubscription, match="s9 is not among"):
        choose_subscription(subs(sub("s1")), "images", "huge", "s9", {}, NOW)
    pinned = choose_subscription(
        subs(sub("s1", days=1), sub("s2", days=9)), "images", "huge", "s2", {}, NOW
    )
    assert pinned.id == "s2"


def config(**relicense):
    base = load(environ={}, search=False)
    return replace(base, relicense=replace(base.relicense, **relicense))


IMAGES, VIDEOS, AUDIO = (
    LICENSE_STREAMS["images"],
    LICENSE_STREAMS["videos"],
    LICENSE_STREAMS["audio"],
)
EDITORIAL = LICENSE_STREAMS["editorial/images"]


def test_an_image_request_names_the_subscription_and_the_size_only():
    [s] = subs(sub("s1"))
    path, query, body = request_for(config(), IMAGES, "59656357", "huge", s, None)
    assert path == "images/licenses" and query == {"subscription_id": "s1"}
    assert body == {"images": [{"image_id": "59656357", "subscription_id": "s1", "size": "huge"}]}


def test_an_api_subscription_needs_price_and_customer_id():
    [s] = subs(sub("s-api", license="api_standard", description="API subscription"))
    assert s.api
    with pytest.raises(CannotLicense, match="customer_id"):
        request_for(config(), IMAGES, "1", "huge", s, None)
    _, _, body = request_for(config(customer_id="c-7", price=12.5), IMAGES, "1", "huge", s, None)
    [item] = body["images"]
    assert item["price"] == 12.5 and item["metadata"] == {"customer_id": "c-7"}


def test_an_enterprise_subscriptions_required_metadata_comes_from_the_config():
    meta = {"purchase_order": {"is_required": True}, "job": {"is_required": False}}
    [s] = subs(sub("s-ent", metadata=meta))
    assert s.required_metadata() == ["purchase_order"]
    with pytest.raises(CannotLicense, match="purchase_order"):
        request_for(config(), IMAGES, "1", "huge", s, None)
    _, _, body = request_for(
        config(metadata={"purchase_order": "PO-9"}), IMAGES, "1", "huge", s, None
    )
    assert body["images"][0]["metadata"] == {"purchase_order": "PO-9"}


def test_an_editorial_image_of_the_catalogue_is_acknowledged():
    [s] = subs(sub("s1"))
    editorial = {"model_released": {"code": 3, "translation_id": "EDITORIAL_ONLY"}}
    assert is_editorial_asset("images", editorial) and not is_editorial_asset("images", {})
    _, _, body = request_for(config(), IMAGES, "1", "huge", s, editorial)
    assert body["images"][0]["editorial_acknowledgement"] is True
    _, _, plain = request_for(config(), IMAGES, "1", "huge", s, {"model_released": {"code": 1}})
    assert "editorial_acknowledgement" not in plain["images"][0]
    [v] = subs(sub("s2", media="video", sizes=("hd",)))
    _, _, video = request_for(config(), VIDEOS, "2", "hd", v, {"model_released": "editorial"})
    assert video["videos"][0]["editorial_acknowledgement"] is True


def test_editorial_media_needs_a_license_name_and_sends_the_country():
    [s] = subs(sub("s1", media="editorial", sizes=("original",)))
    with pytest.raises(CannotLicense, match="editorial_license"):
        request_for(config(), EDITORIAL, "9804979n", "original", s, None)
    path, query, body = request_for(
        config(editorial_license="premier_editorial_all_digital"),
        EDITORIAL,
        "9804979n",
        "original",
        s,
        None,
    )
    assert path == "editorial/images/licenses" and query == {}
    assert body == {
        "country": "USA",
        "editorial": [{"editorial_id": "9804979n", "license": "premier_editorial_all_digital"}],
    }


def test_audio_carries_its_license():
    [s] = subs(sub("s-audio", media="audio", sizes=("original",)))
    path, _, body = request_for(
        config(audio_license="premier_music_basic"), AUDIO, "442583", "original", s, None
    )
    assert path == "audio/licenses"
    assert body == {"audio": [{"audio_id": "442583", "license": "premier_music_basic"}]}


def test_an_answer_gives_the_url_and_the_charge_or_fails_that_item():
    ok = {
        "data": [{"image_id": "1", "download": {"url": "https://x/1.jpg"}, "allotment_charge": 2}]
    }
    licensed = parse_result(ok, "image_id", "1")
    assert licensed.url == "https://x/1.jpg" and licensed.credits == 2
    with pytest.raises(ItemRefused, match="not available"):
        parse_result({"data": [{"image_id": "1", "error": "not available"}]}, "image_id", "1")
    with pytest.raises(MalformedResponse):
        parse_result({"data": [{"image_id": "1"}]}, "image_id", "1")  # no URL
    with pytest.raises(MalformedResponse):
        parse_result({"data": [{"image_id": "2", "download": {"url": "u"}}]}, "image_id", "1")
